"""The coaching session's requests, between the WebSocket adapter and the domains."""
