"""The scan pipeline: vision → coaching → locations, independent of who runs it."""
