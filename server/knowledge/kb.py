"""Loads and checks the disposal knowledge base, and answers the coach's questions about it.

The data lives in ``server/knowledge/data/`` (items.json, rules.yaml, local_rules.yaml: the
rules of the districts that differ from the national one), each file with its own
``version``. Loading checks every record against the schema in :mod:`server.knowledge.model`
and every cross-reference (rule ids, streams), and refuses to start with a message that names
the file and the record at fault: a broken knowledge base must stop a deploy, not produce
invented guidance at run time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from protocol.streams import Stream
from server.errors import WasteCoachError
from server.knowledge.model import Item, LocalRule, Rule, Text

M = TypeVar("M", bound=BaseModel)

DATA_DIR = Path(__file__).parent / "data"
ITEMS_FILE = "items.json"
RULES_FILE = "rules.yaml"
LOCAL_RULES_FILE = "local_rules.yaml"
#: 2022 district codes that have a new one now (강원 42 → 51, 전북 45 → 52, 군위군 → 대구).
_OLD_CODE = re.compile(r"^(42|45)[0-9]{3}$|^47720$")

#: Vision labels (server.vision) → the official item that stands for the whole class. Chosen as
#: the dictionary entry whose guidance fits the class as a whole, not one special case of it.
LABEL_ITEMS: Mapping[str, int] = MappingProxyType(
    {
        "cardboard": 30,  # 골판지 상자
        "paper": 528,  # 종이
        "glass": 534,  # 깨끗한 유리병
        "glass_bottle": 534,
        "metal": 535,  # 금속류 (캔)
        "can": 617,  # 음료캔
        "plastic": 531,  # 플라스틱 용기
        "pet_bottle": 123,  # 음료 페트병 (투명)
        "clear_pet": 123,
        "trash": 542,  # 재활용이 안 되는 생활 쓰레기
        "battery": 537,  # 건전지
        "food": 156,  # 가정 음식물 쓰레기
        "clothing": 536,  # 의류
        "shoes": 657,  # 신발
        "plastic_bag": 532,  # 비닐봉투·비닐 포장재
        "vinyl": 532,
        "paper_cup": 41,  # 종이컵
        "carton": 18,  # 종이팩 (우유팩)
        "milk_carton": 18,
        "electronics": 540,  # 전기전자제품
        "styrofoam": 533,  # 깨끗한 스티로폼 포장재
        "lamp": 136,  # 형광등
        "medicine": 147,  # 알약
        "broken_glass": 498,  # 깨진 유리
        "ceramic": 509,  # 사기 그릇
        # Labels of server.vision.taxonomy.
        "drinking_glass": 503,  # 유리잔
        "food_waste": 541,  # 음식물 쓰레기
        "general_waste": 542,  # 재활용이 안 되는 생활 쓰레기
        "metal_can": 617,  # 음료캔
        "plastic_container": 531,  # 플라스틱 용기
        "plastic_cup": 111,  # 카페 일회용컵
        "plastic_packaging": 531,
        "small_electronics": 540,  # 전기전자제품
        "tissue": 492,  # 화장지
        # Head kinds added with the wider photo set (issue 16). "clear_glass" has no item on
        # purpose: a bottle and a drinking glass go to different bins, and the app asks.
        "wood": 729,  # 나무 쟁반 (small wooden items: general waste)
        "aluminium_foil": 409,  # 알루미늄 호일 (foil and foil dishes: general waste)
        "plastic_film": 532,  # 비닐봉투·비닐 포장재 (head class "film", issue 16 follow-up)
    }
)


class KnowledgeBaseError(WasteCoachError):
    """The knowledge base data is missing, malformed or inconsistent."""


def _read(path: Path) -> Any:
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KnowledgeBaseError(f"{path.name}: cannot read ({exc.strerror})") from exc
    try:
        if path.suffix == ".json":
            return json.loads(raw)
        return yaml.safe_load(raw)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise KnowledgeBaseError(
            f"{path.name}: not valid {path.suffix[1:].upper()}: {exc}"
        ) from exc


def _document(path: Path, key: str) -> tuple[str, list[Any]]:
    doc = _read(path)
    if not isinstance(doc, dict):
        raise KnowledgeBaseError(f"{path.name}: top level must be a mapping")
    version = doc.get("version")
    if not isinstance(version, str) or not version:
        raise KnowledgeBaseError(f"{path.name}: 'version' must be a non-empty string")
    records = doc.get(key)
    if not isinstance(records, list):
        raise KnowledgeBaseError(f"{path.name}: '{key}' must be a list")
    return version, records


def _parse(model: type[M], records: list[Any], file: str) -> list[M]:
    parsed: list[M] = []
    for index, record in enumerate(records):
        try:
            parsed.append(model.model_validate(record))
        except ValidationError as exc:
            label = record.get("id", "?") if isinstance(record, dict) else "?"
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '<record>'}: {err['msg']}"
                for err in exc.errors()
            )
            raise KnowledgeBaseError(
                f"{file}: record #{index} (id {label}) is invalid: {problems}"
            ) from exc
    return parsed


class KnowledgeBase:
    """The items of the official dictionary and our rules; read-only."""

    def __init__(
        self,
        *,
        version: str,
        items: Mapping[int, Item],
        rules: Mapping[str, Rule],
        local_rules: tuple[LocalRule, ...] = (),
        district_names: Mapping[str, Text] | None = None,
    ) -> None:
        self.version = version
        self.items: Mapping[int, Item] = MappingProxyType(dict(items))
        self.rules: Mapping[str, Rule] = MappingProxyType(dict(rules))
        self.local_rules = local_rules
        #: How the coaching names each district that has a local rule.
        self.district_names: Mapping[str, Text] = MappingProxyType(dict(district_names or {}))
        self._check()
        self._local: dict[tuple[str, Stream], LocalRule] = {}
        for local in local_rules:
            for code in local.districts:
                for stream in local.streams:
                    if (code, stream) in self._local:
                        raise KnowledgeBaseError(
                            f"{LOCAL_RULES_FILE}: district {code} has two rules for stream "
                            f"{stream.value!r} ({self._local[code, stream].id!r}, {local.id!r})"
                        )
                    self._local[code, stream] = local
        by_stream: dict[Stream, list[Item]] = {}
        for item in sorted(self.items.values(), key=lambda i: i.id):
            by_stream.setdefault(item.stream, []).append(item)
        self._by_stream = by_stream

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(cls, data_dir: Path | None = None) -> KnowledgeBase:
        """Read and check the data files; raise :class:`KnowledgeBaseError` on any problem."""
        directory = data_dir or DATA_DIR
        items_version, item_records = _document(directory / ITEMS_FILE, "items")
        rules_version, rule_records = _document(directory / RULES_FILE, "rules")
        local_version, local_records = _document(directory / LOCAL_RULES_FILE, "rules")
        items = _parse(Item, item_records, ITEMS_FILE)
        rules = _parse(Rule, rule_records, RULES_FILE)
        local_rules = _parse(LocalRule, local_records, LOCAL_RULES_FILE)
        names = _district_names(directory / LOCAL_RULES_FILE)

        item_map: dict[int, Item] = {}
        for item in items:
            if item.id in item_map:
                raise KnowledgeBaseError(f"{ITEMS_FILE}: item id {item.id} appears twice")
            item_map[item.id] = item
        rule_map: dict[str, Rule] = {}
        for rule in rules:
            if rule.id in rule_map:
                raise KnowledgeBaseError(f"{RULES_FILE}: rule id {rule.id!r} appears twice")
            rule_map[rule.id] = rule
        return cls(
            version=f"rules {rules_version}, items {items_version}, local {local_version}",
            items=item_map,
            rules=rule_map,
            local_rules=tuple(local_rules),
            district_names=names,
        )

    def _check(self) -> None:
        for stream in Stream:
            rule = self.rules.get(f"stream.{stream.value}")
            if rule is None:
                raise KnowledgeBaseError(f"{RULES_FILE}: no category rule 'stream.{stream.value}'")
            if rule.stream is not stream:
                raise KnowledgeBaseError(
                    f"{RULES_FILE}: rule {rule.id!r} is filed under stream {rule.stream.value!r}"
                )
        for rule in self.rules.values():
            if not rule.id.startswith(("stream.", "item.")):
                raise KnowledgeBaseError(
                    f"{RULES_FILE}: rule id {rule.id!r} must start with stream. or item."
                )
            if rule.id.startswith("stream.") and rule.replaces_category_rule:
                raise KnowledgeBaseError(
                    f"{RULES_FILE}: category rule {rule.id!r} cannot replace a category rule"
                )
        for item in self.items.values():
            for rule_id in item.rule_ids:
                rule = self.rules.get(rule_id)
                if rule is None:
                    raise KnowledgeBaseError(
                        f"{ITEMS_FILE}: item {item.id} refers to unknown rule {rule_id!r}"
                    )
                if not rule_id.startswith("item."):
                    raise KnowledgeBaseError(
                        f"{ITEMS_FILE}: item {item.id} may only refer to item rules, "
                        f"not {rule_id!r}"
                    )
        for label, item_id in LABEL_ITEMS.items():
            if item_id not in self.items:
                raise KnowledgeBaseError(f"vision label {label!r} maps to unknown item {item_id}")
        seen: set[str] = set()
        for local in self.local_rules:
            if local.id in seen or local.id in self.rules:
                raise KnowledgeBaseError(f"{LOCAL_RULES_FILE}: rule id {local.id!r} appears twice")
            seen.add(local.id)
            for code in local.districts:
                if _OLD_CODE.match(code):
                    raise KnowledgeBaseError(
                        f"{LOCAL_RULES_FILE}: rule {local.id!r} names district {code} by its 2022 "
                        "code; use the current one (강원 51xxx, 전북 52xxx, 군위군 27720)"
                    )
                if code not in self.district_names:
                    raise KnowledgeBaseError(
                        f"{LOCAL_RULES_FILE}: rule {local.id!r} names district {code}, which is "
                        "not in 'districts'"
                    )

    # ------------------------------------------------------------------ queries

    def rule(self, rule_id: str) -> Rule:
        try:
            return self.rules[rule_id]
        except KeyError:
            raise KnowledgeBaseError(f"unknown rule {rule_id!r}") from None

    def category_rule(self, stream: Stream) -> Rule:
        return self.rule(f"stream.{stream.value}")

    def item(self, item_id: int) -> Item:
        try:
            return self.items[item_id]
        except KeyError:
            raise KnowledgeBaseError(f"unknown item {item_id}") from None

    def items_for_stream(self, stream: Stream) -> list[Item]:
        return list(self._by_stream.get(stream, ()))

    def rules_for(self, stream: Stream, item_id: int | None = None) -> list[Rule]:
        """The rules to follow, most specific first.

        Item rules come first; the category rule of ``stream`` follows unless an item rule
        replaces it. An item rule filed under another stream than ``stream`` is kept: it is
        exactly the case where the item's handling differs from what its look suggests.
        """
        chosen: list[Rule] = []
        if item_id is not None and item_id in self.items:
            chosen.extend(self.rules[rule_id] for rule_id in self.items[item_id].rule_ids)
        if not any(rule.replaces_category_rule for rule in chosen):
            chosen.append(self.category_rule(stream))
        return chosen

    def local_rule(self, district_code: str | None, stream: Stream) -> LocalRule | None:
        """The district's own rule for ``stream`` (current code), or ``None``: national."""
        if district_code is None:
            return None
        return self._local.get((district_code, stream))

    def item_for_label(self, label: str) -> Item | None:
        """The official item that stands for a vision label, or ``None`` for an unknown label."""
        item_id = LABEL_ITEMS.get(label.strip().lower())
        return None if item_id is None else self.items.get(item_id)


def _district_names(path: Path) -> dict[str, Text]:
    doc = _read(path)
    raw = doc.get("districts") if isinstance(doc, dict) else None
    if not isinstance(raw, dict):
        raise KnowledgeBaseError(f"{path.name}: 'districts' must map district codes to names")
    names: dict[str, Text] = {}
    for code, name in raw.items():
        if not isinstance(code, str) or not re.fullmatch(r"[0-9]{5}", code):
            raise KnowledgeBaseError(f"{path.name}: district code {code!r} is not 5 digits")
        try:
            names[code] = Text.model_validate(name)
        except ValidationError as exc:
            raise KnowledgeBaseError(
                f"{path.name}: district {code}: {exc.errors()[0]['msg']}"
            ) from exc
    return names


@lru_cache(maxsize=1)
def get_knowledge_base() -> KnowledgeBase:
    """The knowledge base shipped with the server, loaded and checked once per process."""
    return KnowledgeBase.load()
