"""The per-session event log and its fan-out to connections.

Every logged server event is appended to its session's log, which assigns the next ``seq``,
keeps a short capped history for resume, de-duplicates by an idempotency key and publishes the
event to whichever server process holds the session's connection. Two implementations share one
interface: Redis (distributed) and memory (embedded).
"""
