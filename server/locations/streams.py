"""Which kinds of collection point accept which disposal stream.

The mapping itself is data (``data/kinds.json``) so that adding a kind or moving a stream is a
reviewable data change; this module loads and checks it once, and answers the two questions
the search asks: which kinds to look in for a stream, and what to say when nothing is near.

Each point also carries its own ``accepts`` list, parsed from what its source says it takes
(a recycling centre that only resells furniture does not take bottles). The search needs both:
the kind narrows the index scan, the per-point list keeps the answer honest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Literal

from protocol.messages import Locale
from protocol.streams import Stream

FallbackKey = Literal["nothing_near", "household_only", "no_location", "unavailable"]

#: Kind of the place offered when nothing that accepts the stream is within the radius.
FALLBACK_KIND = "recycling_center"

#: Fixed bit of each stream in ``collection_points.accepts_mask``. Bits are stored in the
#: database, so an entry is never renumbered: a new stream takes the next free bit.
STREAM_BITS: dict[Stream, int] = {
    Stream.PAPER: 0,
    Stream.PAPER_PACK: 1,
    Stream.GLASS: 2,
    Stream.METAL: 3,
    Stream.PLASTIC: 4,
    Stream.CLEAR_PET: 5,
    Stream.VINYL: 6,
    Stream.STYROFOAM: 7,
    Stream.CLOTHING: 8,
    Stream.ELECTRONICS: 9,
    Stream.BATTERY: 10,
    Stream.LAMP: 11,
    Stream.GENERAL: 12,
    Stream.NON_COMBUSTIBLE: 13,
    Stream.FOOD: 14,
    Stream.BULKY: 15,
    Stream.MEDICINE: 16,
    Stream.HAZARDOUS: 17,
    Stream.CONSTRUCTION: 18,
    Stream.OTHER: 19,
}


def stream_bit(stream: Stream) -> int:
    return 1 << STREAM_BITS[stream]


def accepts_mask(streams: list[Stream] | tuple[Stream, ...]) -> int:
    mask = 0
    for stream in streams:
        mask |= stream_bit(stream)
    return mask


@dataclass(frozen=True, slots=True)
class KindInfo:
    key: str
    name_ko: str
    name_en: str
    default_accepts: tuple[Stream, ...]

    def name(self, locale: Locale) -> str:
        return self.name_ko if locale is Locale.KO else self.name_en


@dataclass(frozen=True, slots=True)
class Catalog:
    kinds: dict[str, KindInfo]
    stream_kinds: dict[Stream, tuple[str, ...]]
    notes: dict[str, dict[Locale, str]]

    def kinds_for(self, stream: Stream) -> tuple[str, ...]:
        return self.stream_kinds[stream]

    def note(self, key: FallbackKey, locale: Locale) -> str:
        return self.notes[key][locale]


def parse_catalog(raw: dict[str, object]) -> Catalog:
    """Build and check a catalog; any inconsistency is a packaging bug, so it raises."""
    raw_kinds = raw["kinds"]
    raw_streams = raw["streams"]
    raw_fallback = raw["fallback"]
    if not isinstance(raw_kinds, dict) or not isinstance(raw_streams, dict):
        raise ValueError("kinds.json: 'kinds' and 'streams' must be objects")
    if not isinstance(raw_fallback, dict):
        raise ValueError("kinds.json: 'fallback' must be an object")
    kinds = {
        key: KindInfo(
            key=key,
            name_ko=str(spec["ko"]),
            name_en=str(spec["en"]),
            default_accepts=tuple(Stream(s) for s in spec["default_accepts"]),
        )
        for key, spec in raw_kinds.items()
    }
    if FALLBACK_KIND not in kinds:
        raise ValueError(f"kinds.json: the fallback kind {FALLBACK_KIND!r} is not defined")
    stream_kinds: dict[Stream, tuple[str, ...]] = {}
    for name, kind_keys in raw_streams.items():
        stream = Stream(name)
        unknown = [k for k in kind_keys if k not in kinds]
        if unknown:
            raise ValueError(f"kinds.json: stream {name!r} names unknown kinds {unknown}")
        stream_kinds[stream] = tuple(kind_keys)
    missing = [s.value for s in Stream if s not in stream_kinds]
    if missing:
        raise ValueError(f"kinds.json: no entry for streams {missing}")
    notes = {
        key: {Locale.KO: str(text["ko"]), Locale.EN: str(text["en"])}
        for key, text in raw_fallback.items()
    }
    for key in ("nothing_near", "household_only", "no_location", "unavailable"):
        if key not in notes:
            raise ValueError(f"kinds.json: fallback note {key!r} is missing")
    return Catalog(kinds=kinds, stream_kinds=stream_kinds, notes=notes)


@lru_cache(maxsize=1)
def catalog() -> Catalog:
    text = resources.files("server.locations").joinpath("data/kinds.json").read_text("utf-8")
    return parse_catalog(json.loads(text))
