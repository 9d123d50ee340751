"""The panel's HTTP Client API: client, models (read defensively by `shape`), errors, request pacing by priority
(`pacing` plain logic, `scheduler` its asyncio side) and retry backoff. Knows nothing of Discord."""
