"""The panel's HTTP Client API: client, models, errors and request pacing. Knows nothing of Discord."""
