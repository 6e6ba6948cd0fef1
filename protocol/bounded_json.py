"""JSON parsing that a hostile frame cannot make expensive.

``json.loads`` followed by pydantic costs time in proportion to the number of values in the
frame, and ``json.loads`` recurses once per level of nesting. A frame of 1.5 MiB can hold
150,000 object keys (hundreds of milliseconds on the event loop, mostly in pydantic's error
list) or a thousand nested arrays (``RecursionError``). No message of the protocol comes near
either, so :func:`parse` refuses such frames before parsing them:

* a fast upper bound first: the counts of ``{``, ``[`` and ``,`` in the raw text (C speed,
  about a millisecond per MiB) bound the depth and the number of values from above, since
  characters inside strings only add to them. Every ordinary message passes here.
* only when that bound is over a limit, an exact count: a tokenizer that skips whole strings
  at C speed and stops as soon as a limit is passed, so its cost is bounded by the limits,
  not by the frame.

It also refuses what ``json.loads`` accepts but JSON does not (``NaN``, ``Infinity``) and
strings that are not valid Unicode: a ``\\ud800`` escape decodes to a lone surrogate, which
cannot be encoded as UTF-8 and poisons anything that stores or echoes it.
"""

from __future__ import annotations

import json
import re
from typing import NoReturn

#: Deepest nesting of objects and arrays accepted. The protocol's messages nest 3 deep.
MAX_JSON_DEPTH = 32
#: Most object members and array elements, in total, in one frame.
MAX_JSON_VALUES = 1_024

# A whole string (escapes included) or one structural character. Strings are matched in one
# step at C speed, so a long base64 image or chat text is a single token.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]', re.DOTALL)
# A \u escape in the surrogate range: only then can a parsed string hold a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


class JsonRejected(ValueError):
    """The frame was refused. ``too_complex`` tells a limit apart from invalid JSON."""

    def __init__(self, message: str, *, too_complex: bool) -> None:
        super().__init__(message)
        self.message = message
        self.too_complex = too_complex


def parse(
    text: str, *, max_depth: int = MAX_JSON_DEPTH, max_values: int = MAX_JSON_VALUES
) -> object:
    """The JSON value of ``text``, or :class:`JsonRejected`."""
    _check_shape(text, max_depth, max_values)
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:  # pragma: no cover - the depth check comes first
        _too_complex(f"nested deeper than {max_depth} levels")
    except ValueError as exc:
        raise JsonRejected(f"not valid JSON: {exc}", too_complex=False) from None
    if _SURROGATE_ESCAPE.search(text) is not None and not _valid_unicode(value):
        raise JsonRejected(
            "a string holds a lone surrogate (\\ud800-\\udfff escape); "
            "strings must be valid Unicode",
            too_complex=False,
        )
    return value


def _check_shape(text: str, max_depth: int, max_values: int) -> None:
    opened = text.count("{") + text.count("[")
    if opened <= max_depth and opened + text.count(",") <= max_values:
        return  # an upper bound of both is within the limits
    depth = 0
    values = 0
    # Valid JSON has at most two strings per comma or container (key and value); past that
    # bound the frame is over the limit or not JSON, and the scan can stop either way.
    budget = 3 * max_values + 3
    for tokens, match in enumerate(_TOKEN.finditer(text)):
        char = match.group()
        if char == "{" or char == "[":
            depth += 1
            values += 1
            if depth > max_depth:
                _too_complex(f"nested deeper than {max_depth} levels")
        elif char == "}" or char == "]":
            depth -= 1
        elif char == ",":
            values += 1
        if values > max_values or tokens > budget:
            _too_complex(f"more than {max_values} values (object members and array elements)")


def _too_complex(message: str) -> NoReturn:
    raise JsonRejected(message, too_complex=True)


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _valid_unicode(value: object) -> bool:
    """Whether every string in ``value`` encodes as UTF-8. The shape check bounds the walk."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not _encodable(item):
                return False
        elif isinstance(item, dict):
            for key, member in item.items():
                if not _encodable(key):
                    return False
                stack.append(member)
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
