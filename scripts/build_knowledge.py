"""Builds ``server/knowledge/data/items.json`` from the official dictionary and our curation.

    .venv/bin/python scripts/build_knowledge.py [--source ../shared/data/rules/official_items.json]

The product never reads ../shared: this script turns the Ministry of Environment dictionary
(분리배출.kr, 730 items) into the repository's own versioned data. It keeps each item's official
id and category paths exactly as published, decodes the paths that the source runs together,
repairs names that the crawl cut short, and adds what we curate in
``scripts/knowledge_curation.py``: English names, colloquial aliases and item rules.

Run it again after editing the curation; commit the result. It fails loudly when the source
holds a category it does not recognise, so a new official category is never silently mapped.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import unicodedata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from knowledge_curation import (  # noqa: E402
    ALIASES,
    DROP_ALIASES,
    EN_NAMES,
    ITEM_RULES,
    NAME_FIXES,
    RULE_ALIASES,
)

from protocol.messages import OfficialCategory  # noqa: E402
from protocol.streams import Stream  # noqa: E402

DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "rules" / "official_items.json"
OUT = ROOT / "server" / "knowledge" / "data" / "items.json"
VERSION = "2026.12.1"

MAJORS = (
    "재활용폐기물",
    "일반폐기물",
    "음식물류폐기물",
    "대형폐기물",
    "생활계 유해폐기물",
    "공사장 생활폐기물",
    "기타",
)
#: Middle categories each major is known to have in the dictionary.
MIDDLES: dict[str, frozenset[str]] = {
    "재활용폐기물": frozenset(
        {
            "종이",
            "종이팩",
            "유리병",
            "금속류",
            "합성수지 용기류",
            "무색페트병",
            "합성수지 비닐류",
            "발포합성수지(스티로폼 등)",
            "의류 및 원단",
            "전기전자 제품류",
            "전지류",
            "조명제품",
        }
    ),
    "일반폐기물": frozenset({"일반종량제폐기물", "불연성종량제폐기물"}),
    "음식물류폐기물": frozenset(),
    "대형폐기물": frozenset({"공사장 생활폐기물", "재활용폐기물"}),
    "생활계 유해폐기물": frozenset(
        {
            "폐의약품",
            "폐농약",
            "폐페인트, 폐광택제, 폐접착제",
            "수은함유 폐기물",
            "천연방사성제품",
            "기타",
        }
    ),
    "공사장 생활폐기물": frozenset({"일반종량제폐기물", "불연성종량제폐기물"}),
    "기타": frozenset(),
}

#: Words the source lists among related names that are categories, not items.
CATEGORY_WORDS = frozenset(MAJORS) | {m for ms in MIDDLES.values() for m in ms} | {"플라스틱"}


def decode_paths(tokens: list[str]) -> list[OfficialCategory]:
    """Split a run-together classification list into official (major, middle, minor) paths.

    The source concatenates several paths (``[재활용폐기물, 금속류, 고철, 일반폐기물,
    일반종량제폐기물]``) and sometimes leaves out a repeated major (``[재활용폐기물, 종이,
    합성수지 용기류, 일반폐기물]``). A token starts a new path when it is a major name, unless it
    is also a middle of the current major and nothing after it belongs under it as a major
    (``[대형폐기물, 재활용폐기물]`` is one path). A known middle of the current major after a
    complete (major, middle) starts a sibling path under the same major.
    """
    paths: list[list[str]] = []
    for index, token in enumerate(tokens):
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        current = paths[-1] if paths else None
        if current is None:
            if token not in MAJORS:
                raise ValueError(f"path starts with {token!r}, not a known major category")
            paths.append([token])
            continue
        major = current[0]
        as_middle = token in MIDDLES[major]
        heads_a_path = token in MAJORS and following in MIDDLES.get(token, frozenset())
        if len(current) == 1 and as_middle and not heads_a_path:
            current.append(token)
        elif token in MAJORS:
            paths.append([token])
        elif as_middle:
            paths.append([major, token])
        elif len(current) == 2:
            current.append(token)  # a minor category: 고철, 일반팩, 기타캔류, ...
        else:
            raise ValueError(f"cannot place {token!r} in {tokens!r}")
    return [
        OfficialCategory(
            major=p[0], middle=p[1] if len(p) > 1 else None, minor=p[2] if len(p) > 2 else None
        )
        for p in paths
    ]


def stream_of(category: OfficialCategory) -> Stream:
    """The stream of an official path; the dictionary's first path is the item's main one."""
    major, middle = category.major, category.middle
    if major == "재활용폐기물":
        for stream, (off_major, off_middle) in _OFFICIAL.items():
            if off_major == major and off_middle == middle:
                return stream
        raise ValueError(f"unknown recyclable middle category {middle!r}")
    if major == "일반폐기물":
        return Stream.NON_COMBUSTIBLE if middle == "불연성종량제폐기물" else Stream.GENERAL
    if major == "음식물류폐기물":
        return Stream.FOOD
    if major == "대형폐기물":
        return Stream.BULKY
    if major == "생활계 유해폐기물":
        return Stream.MEDICINE if middle == "폐의약품" else Stream.HAZARDOUS
    if major == "공사장 생활폐기물":
        return Stream.CONSTRUCTION
    if major == "기타":
        return Stream.OTHER
    raise ValueError(f"unknown major category {major!r}")


def _official() -> dict[Stream, tuple[str, str | None]]:
    from protocol.streams import OFFICIAL_PATH

    return OFFICIAL_PATH


_OFFICIAL = _official()


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip()


_PREFIXES = (
    "깨끗한 ",
    "다 쓴 ",
    "빈용기보증금 대상 ",
    "금속 재질의 ",
    "플라스틱 재질의 ",
    "다량의 ",
)


def name_variants(name: str) -> list[str]:
    """Forms people type for an official name: without qualifiers, parentheses or spaces."""
    out: list[str] = []
    base = name
    for prefix in _PREFIXES:
        if base.startswith(prefix):
            base = base[len(prefix) :]
            out.append(base)
    if base.endswith("의 재질"):
        base = base[: -len("의 재질")]
        out.append(base)
    match = re.fullmatch(r"(.+?)\s*\((.+)\)", base)
    if match:
        outer, inner = match.group(1).strip(), match.group(2).strip()
        out.append(outer)
        if "재질" not in inner:
            out.extend(part.strip() for part in inner.split(","))
    for form in [name, *out]:
        if " " in form:
            out.append(form.replace(" ", ""))
    return out


def build(source: Path) -> dict[str, Any]:
    doc = json.loads(source.read_text(encoding="utf-8"))
    items: list[dict[str, Any]] = []
    rule_for_item: dict[int, list[str]] = {}
    for rule_id, ids in ITEM_RULES.items():
        for item_id in ids:
            rule_for_item.setdefault(item_id, []).append(rule_id)
    known_ids = {raw["id"] for raw in doc["items"]}
    unknown = sorted(set(rule_for_item) - known_ids)
    if unknown:
        raise SystemExit(f"curation names item ids missing from the source: {unknown}")

    for raw in doc["items"]:
        item_id = int(raw["id"])
        official = normalise(raw["name"])
        name_ko = NAME_FIXES.get(item_id, official)
        categories = decode_paths([normalise(t) for t in raw["classification"]])
        stream = stream_of(categories[0])
        aliases: list[str] = []
        if name_ko != official and item_id not in NAME_FIXES_DROP_OFFICIAL:
            aliases.append(official)
        aliases.extend(name_variants(name_ko))
        aliases.extend(ALIASES.get(item_id, ()))
        rule_ids = rule_for_item.get(item_id, [])
        for rule_id in rule_ids:
            aliases.extend(RULE_ALIASES.get(rule_id, ()))
        related = [
            normalise(r)
            for r in raw.get("related_names", [])
            if normalise(r) not in CATEGORY_WORDS and normalise(r) != name_ko
        ]
        name_en = EN_NAMES.get(item_id) or EN_NAMES.get(name_ko)
        items.append(
            {
                "id": item_id,
                "name_ko": name_ko,
                "name_en": name_en,
                "aliases": _unique(
                    a
                    for a in aliases
                    if a and a != name_ko and a not in DROP_ALIASES.get(item_id, frozenset())
                ),
                "related": _unique(related),
                "categories": [c.model_dump() for c in categories],
                "stream": stream.value,
                "rule_ids": rule_ids,
            }
        )
    items.sort(key=lambda i: i["id"])
    return {
        "version": VERSION,
        "source": doc.get("source", ""),
        "note": (
            "Generated by scripts/build_knowledge.py from the official dictionary and "
            "scripts/knowledge_curation.py. Do not edit by hand."
        ),
        "items": items,
    }


#: Items whose official name is crawl debris ("상태", "종"): not worth keeping as an alias.
NAME_FIXES_DROP_OFFICIAL = frozenset(
    {150, 151, 152, 153, 154, 155, 652, 653, 654, 655, 656, 657, 658, 659, 660}
    | {36, 40, 42, 44, 406, 410, 561, 156, 157, 163, 170, 171, 650, 127, 465, 143}
    | {113, 137, 359, 511, 531, 532, 540, 542, 545, 668, 200, 423, 122, 530}
)


def _unique(values: Any) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        seen.setdefault(normalise(value), None)
    return list(seen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    data = build(args.source)
    args.out.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    streams: dict[str, int] = {}
    for item in data["items"]:
        streams[item["stream"]] = streams.get(item["stream"], 0) + 1
    print(f"wrote {len(data['items'])} items to {args.out.relative_to(ROOT)}")
    print("items per stream:", json.dumps(streams, ensure_ascii=False, sort_keys=True))
    missing_en = [i["id"] for i in data["items"] if not i["name_en"]]
    print(f"items without an English name: {len(missing_en)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
