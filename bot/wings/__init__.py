"""The Wings console websocket: frames, tokens, the protocol session, connections and their manager. Knows nothing of Discord."""
