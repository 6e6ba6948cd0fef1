"""Disposal knowledge: the official item dictionary and our own guidance, as versioned data."""
