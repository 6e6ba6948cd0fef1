"""Hypothesis strategies for what a client can put on the coaching WebSocket.

Shared by the fuzz tests of the session machine (tests/protocol/test_fuzz_session.py) and of
the live endpoint (tests/server/test_fuzz_ws.py), so that both are fed the same frames.

``VALID`` holds one strategy per client message of ``protocol/messages.py``, written from
the models' fields and limits (docs/protocol.md section 4.1): every value it draws is a
message the schema accepts. :func:`frames` draws those, and hostile frames made from them or
from nothing: a required field dropped, an unknown one added, a wrong type, a string one past
its limit, an unreadable request id, a lone surrogate, deep nesting, too many values, a frame
over the size limit, truncated or trailing garbage, ``NaN``, random JSON, random text, random
bytes as text, and binary frames.

Each :class:`Frame` says what the server must make of it: ``valid`` is ``True`` for a message
the schema accepts, ``False`` for one it must refuse for what it is (an ``error`` with one of
the codes that count towards the 1008 close), ``None`` when either may happen.
"""

from __future__ import annotations

import base64
import json
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from protocol.bounded_json import MAX_JSON_DEPTH, MAX_JSON_VALUES
from protocol.messages import (
    CLIENT_MESSAGES,
    MAX_INLINE_IMAGE_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_START_MESSAGE_BYTES,
)

#: Request ids the schema accepts: 1-64 characters of ``[A-Za-z0-9._:-]``.
REQUEST_ID_ALPHABET = string.ascii_letters + string.digits + "._:-"
REQUEST_IDS = st.text(REQUEST_ID_ALPHABET, min_size=1, max_size=64)
#: Characters that UTF-8 can encode (no lone surrogates): what a well-behaved client sends.
CHARS = st.characters(codec="utf-8")
LOCALES = st.sampled_from(["ko", "en"])
TYPES = tuple(model.model_fields["type"].default for model in CLIENT_MESSAGES)
FIELDS: dict[str, frozenset[str]] = {
    model.model_fields["type"].default: frozenset(model.model_fields) for model in CLIENT_MESSAGES
}
#: Fields that must be present, per message type.
REQUIRED: dict[str, tuple[str, ...]] = {
    model.model_fields["type"].default: tuple(
        name for name, info in model.model_fields.items() if info.is_required() or name == "type"
    )
    for model in CLIENT_MESSAGES
}
#: Length limits of the string fields (characters), from the models.
MAX_LENGTH = {"request_id": 64, "token": 8192, "choice": 64, "text": 20_000, "scan_id": 64}
#: Fields with a minimum length of one.
NON_EMPTY = ("request_id", "token", "choice")


def long_text(*lengths: int) -> st.SearchStrategy[str]:
    """One character repeated to each of ``lengths`` (cheap to draw, however long)."""
    return st.builds(lambda char, n: char * n, CHARS, st.sampled_from(lengths))


#: Names and values a refusal might quote: short ones, and ones far too long to quote whole.
NAMES = st.text(CHARS, max_size=16) | long_text(65, 3_000, 100_000)


def sized_text(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    """Short texts of any characters, and now and then one exactly at either limit (built by
    repetition: drawing thousands of characters one by one would be slow)."""
    short = st.text(CHARS, min_size=min_size, max_size=min(max_size, 24))
    return st.one_of(short, short, short, long_text(min_size, max_size))


def _numbers(low: float, high: float) -> st.SearchStrategy[float | int]:
    return st.one_of(
        st.floats(low, high, allow_nan=False, allow_infinity=False),
        st.integers(int(low), int(high)),
    )


GEO_POINTS = st.fixed_dictionaries(
    {"lat": _numbers(-90, 90), "lon": _numbers(-180, 180)},
    optional={"accuracy_m": st.one_of(st.none(), _numbers(0, 1e6))},
)
IMAGES = st.one_of(
    st.fixed_dictionaries({"kind": st.just("upload"), "key": sized_text(1, 512)}),
    st.fixed_dictionaries(
        {
            "kind": st.just("inline"),
            "content_type": st.sampled_from(["image/jpeg", "image/png", "image/webp"]),
            "data": st.binary(min_size=1, max_size=48).map(lambda b: base64.b64encode(b).decode()),
        }
    ),
)
RESUMES = st.fixed_dictionaries(
    {
        "session_id": sized_text(1, 64),
        "epoch": sized_text(1, 64),
        "last_seq": st.integers(0, 2**53),
    }
)


def _message(kind: str, required: dict[str, Any], optional: dict[str, Any]) -> Any:
    return st.fixed_dictionaries({"type": st.just(kind), **required}, optional=optional)


#: One strategy per client message type; each draws messages the schema accepts.
VALID: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "session.start": _message(
        "session.start",
        {"token": sized_text(1, 8192)},
        {
            "v": st.just(1),
            "request_id": st.none() | REQUEST_IDS,
            "locale": LOCALES,
            "resume": st.none() | RESUMES,
        },
    ),
    "scan.start": _message(
        "scan.start",
        {"request_id": REQUEST_IDS, "image": IMAGES},
        {"location": st.none() | GEO_POINTS, "locale": st.none() | LOCALES},
    ),
    "scan.cancel": _message("scan.cancel", {"request_id": REQUEST_IDS}, {}),
    "ping": _message("ping", {}, {"request_id": st.none() | REQUEST_IDS}),
    "scan.clarify.answer": _message(
        "scan.clarify.answer", {"request_id": REQUEST_IDS, "choice": sized_text(1, 64)}, {}
    ),
    "chat.message": _message(
        "chat.message",
        {"request_id": REQUEST_IDS, "text": sized_text(0, 20_000)},
        {"scan_id": st.none() | sized_text(0, 64), "locale": st.none() | LOCALES},
    ),
    "auth.refresh": _message(
        "auth.refresh",
        {"token": sized_text(1, 8192)},
        {"request_id": st.none() | REQUEST_IDS},
    ),
    "live.start": _message(
        "live.start",
        {"request_id": st.text(REQUEST_ID_ALPHABET, min_size=1, max_size=48)},
        {"location": st.none() | GEO_POINTS, "locale": st.none() | LOCALES},
    ),
    "live.stop": _message("live.stop", {"request_id": REQUEST_IDS}, {}),
}
VALID_MESSAGES = st.one_of(*VALID.values())

#: Any JSON value (NaN and the infinities are left out: they are a mutation of their own).
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(CHARS, max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@dataclass(frozen=True)
class Frame:
    """One frame: ``text``, or ``binary`` when ``text`` is None."""

    text: str | None
    valid: bool | None
    how: str
    binary: bytes = b""

    def __repr__(self) -> str:
        if self.text is None:
            return f"Frame(binary={self.binary[:64]!r}, how={self.how!r})"
        shown = self.text if len(self.text) <= 300 else self.text[:300] + "..."
        return f"Frame({shown!r}, len={len(self.text)}, valid={self.valid}, how={self.how!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # How hypothesis prints a failing example: short, even for a frame of megabytes.
        printer.text(repr(self))


def encode(message: Any, draw: st.DrawFn) -> str:
    return json.dumps(message, ensure_ascii=draw(st.booleans()))


@st.composite
def valid_frames(draw: st.DrawFn) -> Frame:
    return Frame(encode(draw(VALID_MESSAGES), draw), True, "valid")


@st.composite
def mutated_frames(draw: st.DrawFn) -> Frame:
    """A valid message with one thing broken; ``valid`` says whether it is surely refused."""
    message = dict(draw(VALID_MESSAGES))
    kind = message["type"]
    how = draw(
        st.sampled_from(
            [
                "missing", "unknown_field", "wrong_value", "too_long", "empty", "bad_request_id",
                "lone_surrogate", "nested", "bad_type", "bad_version", "nan",
            ]
        )
    )
    valid: bool | None = False
    if how == "missing":
        del message[draw(st.sampled_from(REQUIRED[kind]))]
    elif how == "unknown_field":
        name = draw(NAMES.filter(lambda n: n not in FIELDS[kind]))
        message[name] = draw(JSON_VALUES)
    elif how == "wrong_value":
        # Often still wrong, but a drawn value may happen to fit (null for an optional field).
        message[draw(st.sampled_from(sorted(message)))] = draw(JSON_VALUES)
        valid = None
    elif how == "too_long":
        fields = [name for name in MAX_LENGTH if name in FIELDS[kind]]
        name = draw(st.sampled_from(fields))
        message[name] = draw(CHARS) * (MAX_LENGTH[name] + draw(st.integers(1, 3)))
    elif how == "empty":
        fields = [name for name in NON_EMPTY if name in FIELDS[kind]]
        if not fields:
            return Frame(encode(message, draw), True, "valid")
        message[draw(st.sampled_from(fields))] = ""
    elif how == "bad_request_id":
        bad = st.text(CHARS, max_size=70).filter(
            lambda value: not (0 < len(value) <= 64 and set(value) <= set(REQUEST_ID_ALPHABET))
        )
        # A valid id with a trailing line break: "$" of the pattern would let it through.
        message["request_id"] = draw(bad | REQUEST_IDS.map(lambda value: value[:63] + "\n"))
    elif how == "lone_surrogate":
        surrogate = draw(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF))
        name = draw(st.sampled_from(sorted(message)))
        if isinstance(message[name], str) and draw(st.booleans()):
            value = message[name]
            at = draw(st.integers(0, len(value)))
            message[name] = value[:at] + surrogate + value[at:]
        else:
            message[name + surrogate] = 1
    elif how == "nested":
        name = draw(st.sampled_from(sorted(message)))
        depth = draw(st.integers(1, MAX_JSON_DEPTH + 8))
        wrapped: Any = message[name]
        for _ in range(depth):
            wrapped = [wrapped] if draw(st.booleans()) else {"x": wrapped}
        message[name] = wrapped
    elif how == "bad_type":
        message["type"] = draw(
            NAMES.filter(lambda t: t not in TYPES)
            | st.sampled_from(TYPES).map(str.upper)
            | JSON_VALUES.filter(lambda t: not isinstance(t, str))
        )
    elif how == "bad_version":
        message = {**draw(VALID["session.start"]), "type": "session.start"}
        # Protocol version 1 is the JSON number 1; true and 1.0 are other values.
        message["v"] = draw(
            st.sampled_from([True, 1.0, 0, 2, "1", None])
            | NAMES
            | JSON_VALUES.filter(lambda v: not (type(v) is int and v == 1))
        )
    elif how == "nan":
        message[draw(st.sampled_from(sorted(message)))] = draw(
            st.sampled_from([float("nan"), float("inf"), float("-inf")])
        )
    return Frame(encode(message, draw), valid, how)


@st.composite
def broken_text(draw: st.DrawFn) -> Frame:
    """Frames broken as text: not JSON, or JSON that no message has the shape of."""
    how = draw(
        st.sampled_from(
            [
                "truncated", "trailing", "random_json", "random_text", "random_bytes",
                "deep", "many_values", "big_inline_image", "duplicate_keys", "binary",
            ]
        )
    )
    if how == "binary":
        return Frame(None, False, how, binary=draw(st.binary(max_size=64)))
    if how in ("truncated", "trailing"):
        text = encode(draw(VALID_MESSAGES), draw)
        if how == "truncated":
            return Frame(text[: draw(st.integers(0, len(text) - 1))], False, how)
        # Whitespace after the value is allowed by JSON; anything else is not.
        garbage = draw(st.text(CHARS, min_size=1, max_size=8).filter(lambda g: g.strip(" \t\n\r")))
        return Frame(text + garbage, False, how)
    if how == "random_json":
        return Frame(encode(draw(JSON_VALUES), draw), None, how)
    if how == "random_text":
        return Frame(draw(st.text(max_size=64)), None, how)
    if how == "random_bytes":
        # Decoded as a lenient transport might: invalid UTF-8 becomes lone surrogates.
        raw = draw(st.binary(max_size=64))
        return Frame(raw.decode("utf-8", "surrogateescape"), None, how)
    if how == "deep":
        depth = draw(st.integers(MAX_JSON_DEPTH, 5_000))
        return Frame('{"type": "ping", "x": ' + "[" * depth + "]" * depth + "}", False, how)
    if how == "many_values":
        count = draw(st.integers(MAX_JSON_VALUES, MAX_JSON_VALUES + 50))
        return Frame('{"type": "ping", "x": [' + ",".join("0" * count) + "]}", False, how)
    if how == "big_inline_image":
        # Valid base64 of one byte more than an inline image may hold: about 1.4 MB, under the
        # frame limit of an open session (over the limit before session.start: refused too).
        data = "AAAA" * (MAX_INLINE_IMAGE_BYTES // 3 + 1)
        message = {"type": "scan.start", "request_id": "big",
                   "image": {"kind": "inline", "content_type": "image/png", "data": data}}
        return Frame(json.dumps(message), False, how)
    # duplicate_keys: the last one wins in Python's parser; either may be what is checked.
    first, second = draw(st.sampled_from(TYPES)), draw(st.sampled_from(TYPES))
    return Frame(f'{{"type": "{first}", "type": "{second}"}}', None, how)


@st.composite
def oversized_frames(draw: st.DrawFn, *, open_session: bool) -> Frame:
    """A frame one to a few bytes over the size limit, counted in UTF-8 bytes: of an open
    session (1.5 MiB) when ``open_session``, else of the handshake (16 KiB). Whether it is
    refused depends on the state it arrives in: its ``valid`` is ``None``."""
    limit = MAX_MESSAGE_BYTES if open_session else MAX_START_MESSAGE_BYTES
    char = draw(st.sampled_from(["x", "é", "가", "😀"]))
    base = '{"type": "chat.message", "request_id": "big", "text": ""}'
    room = limit - len(base.encode()) + draw(st.integers(1, 4))
    count = -(-room // len(char.encode()))  # enough characters to pass the limit
    return Frame(base[:-2] + char * count + '"}', None, "oversized")


def frames(*, huge: bool = True) -> st.SearchStrategy[Frame]:
    """Any frame: valid, mutated, broken; with ``huge``, also frames over the size limits."""
    choices = [valid_frames(), mutated_frames(), mutated_frames(), broken_text()]
    if huge:
        choices += [oversized_frames(open_session=False), oversized_frames(open_session=True)]
    return st.one_of(*choices)


# --------------------------------------------------------------------------- what may come back

_PROTOCOL_DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def _section(title: str) -> list[str]:
    lines = _PROTOCOL_DOC.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("#"))
    return lines[start:end]


def documented_error_codes() -> frozenset[str]:
    """The codes of the error table (docs/protocol.md section 8)."""
    rows = (line for line in _section("## 8. Errors") if line.startswith("| `"))
    return frozenset(row.split("`")[1] for row in rows)


def documented_close_codes() -> frozenset[int]:
    """The codes of the close-code table (docs/protocol.md section 9)."""
    rows = (line for line in _section("### Close codes") if line[2:3].isdigit())
    return frozenset(int(row.split("|")[1]) for row in rows)
