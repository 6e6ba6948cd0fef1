"""The Waste Coach wire contract: message models and the sans-I/O session state machine.

Everything here is pure: no sockets, no asyncio, no FastAPI. The server, the workers, the
tests and any client are written against these models.
"""

from protocol.messages import PROTOCOL_VERSION

__all__ = ["PROTOCOL_VERSION"]
