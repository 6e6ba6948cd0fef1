"""Camera frames of live mode: binary WebSocket frames with a small header.

A JPEG sent as JSON grows by a third in base64 and costs a parse; live mode sends each camera
frame as one binary WebSocket message instead, laid out as follows (integers big-endian)::

    offset  size  field
    0       1     format, 0x01
    1       1     n, the length of the request id (1 to 48)
    2       n     the request id of the ``live.start`` (ASCII, as in JSON)
    2+n     4     frame number, unsigned; it must grow within a live request
    6+n     8     capture time, unsigned milliseconds since the Unix epoch (client clock)
    14+n    rest  the image: JPEG, PNG or WebP, at most ``MAX_LIVE_FRAME_BYTES``

The server echoes the frame number and capture time in the ``live.hint`` that describes the
frame, so a client measures its own round trip without trusting the server's clock.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from protocol.messages import MAX_LIVE_FRAME_BYTES, MAX_LIVE_REQUEST_ID, REQUEST_ID_PATTERN

FRAME_FORMAT = 0x01
_TAIL = struct.Struct(">IQ")
#: Bytes of a frame that are not the image, at most.
MAX_HEADER_BYTES = 2 + MAX_LIVE_REQUEST_ID + _TAIL.size
#: Largest binary message live mode takes; what is over it is refused unread.
MAX_BINARY_FRAME_BYTES = MAX_HEADER_BYTES + MAX_LIVE_FRAME_BYTES

_REQUEST_ID = re.compile(REQUEST_ID_PATTERN.encode())


class FrameRejected(ValueError):
    """The binary message is not a camera frame (bad header); the message says why."""


@dataclass(frozen=True, slots=True)
class CameraFrame:
    request_id: str
    number: int
    captured_ms: int
    image: bytes


def encode_frame(request_id: str, number: int, captured_ms: int, image: bytes) -> bytes:
    """A binary message carrying ``image`` (what a client sends)."""
    rid = request_id.encode("ascii")
    if not 0 < len(rid) <= MAX_LIVE_REQUEST_ID:
        raise ValueError("request id must be 1 to 48 ASCII characters")
    return bytes((FRAME_FORMAT, len(rid))) + rid + _TAIL.pack(number, captured_ms) + image


def decode_frame(data: bytes) -> CameraFrame:
    """Parse a binary message's header; raises :class:`FrameRejected`. The image is not
    looked at here (its size is: one over the limit is the caller's to drop)."""
    if len(data) < 2:
        raise FrameRejected("a camera frame starts with a 2-byte header")
    if data[0] != FRAME_FORMAT:
        raise FrameRejected(f"unknown camera frame format {data[0]}; use {FRAME_FORMAT}")
    n = data[1]
    end = 2 + n
    if not 0 < n <= MAX_LIVE_REQUEST_ID or len(data) < end + _TAIL.size:
        raise FrameRejected("the camera frame's header is cut short or its id length is wrong")
    rid = data[2:end]
    if not _REQUEST_ID.fullmatch(rid):
        raise FrameRejected("the camera frame's request id has characters ids may not have")
    number, captured_ms = _TAIL.unpack_from(data, end)
    return CameraFrame(rid.decode("ascii"), number, captured_ms, data[end + _TAIL.size :])
