"""Waste Coach server: REST and WebSocket front end, plus the domain code workers call."""
