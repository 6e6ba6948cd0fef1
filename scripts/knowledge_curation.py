"""Curated additions to the official dictionary, consumed by scripts/build_knowledge.py.

Everything here is written by the Waste Coach team: corrected names for entries the crawl cut
short, English names, the names people actually say (colloquial Korean, English, spacing
variants), and which item rules of server/knowledge/data/rules.yaml apply to which items.
Official ids and category paths are never changed here.
"""

from __future__ import annotations

#: Official names cut short by the crawl ("상태", "종", "가정에서 배출하"), named from the
#: entry's category and its related names.
NAME_FIXES: dict[int, str] = {}

#: English names, by item id or by (fixed) Korean name.
EN_NAMES: dict[int | str, str] = {}

#: Extra names per item id.
ALIASES: dict[int, tuple[str, ...]] = {}

#: Item rule id → official item ids it applies to.
ITEM_RULES: dict[str, tuple[int, ...]] = {}

#: Names every item under an item rule is also known by.
RULE_ALIASES: dict[str, tuple[str, ...]] = {}
