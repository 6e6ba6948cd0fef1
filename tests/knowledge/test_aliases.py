"""The names we curate (scripts/knowledge_curation.py and knowledge_everyday_aliases.tsv) each
name one bin: an alias shared with an item of another stream would send the person to a bin
picked by rank, and a name that things of different bins share is answered with conditions
(server/coach/shared_names.py), never made an alias of one of them."""

from __future__ import annotations

import importlib
import sys
import unicodedata
from pathlib import Path
from types import ModuleType

import pytest

from server.coach.shared_names import SHARED
from server.knowledge.kb import KnowledgeBase
from server.search.text import key

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"

#: Names two official dictionary entries of different streams both carry, as published (the
#: chat answers them with each one's condition): the plastic and the fabric storage box, the
#: glue stick and the liquid adhesive.
OFFICIAL_SHARED = frozenset({"리빙박스", "접착제"})


@pytest.fixture(scope="module")
def curation() -> ModuleType:
    sys.path.insert(0, str(SCRIPTS))
    try:
        return importlib.import_module("knowledge_curation")
    finally:
        sys.path.remove(str(SCRIPTS))


def _names(kb: KnowledgeBase) -> dict[str, set[tuple[int, str]]]:
    out: dict[str, set[tuple[int, str]]] = {}
    for item in kb.items.values():
        for name in (item.name_ko, item.name_en or "", *item.aliases):
            if name:
                out.setdefault(key(name), set()).add((item.id, item.stream.value))
    return out


def test_no_name_is_shared_by_items_of_different_streams(kb: KnowledgeBase) -> None:
    clashes = {
        name: sorted(owners)
        for name, owners in _names(kb).items()
        if len({stream for _, stream in owners}) > 1 and name not in OFFICIAL_SHARED
    }
    assert clashes == {}


def test_every_everyday_name_is_built_into_the_shipped_items(
    kb: KnowledgeBase, curation: ModuleType
) -> None:
    missing = []
    for item_id, names in curation.EVERYDAY_ALIASES.items():
        item = kb.items.get(item_id)
        assert item is not None, f"knowledge_everyday_aliases.tsv names unknown item {item_id}"
        built = {key(a) for a in (item.name_ko, item.name_en or "", *item.aliases)}
        dropped = {key(a) for a in curation.DROP_ALIASES.get(item_id, ())}
        missing.extend(
            (item_id, name)
            for name in names
            if key(unicodedata.normalize("NFKC", name)) not in built | dropped
        )
    assert missing == [], "items.json is stale: run scripts/build_knowledge.py"


def test_the_everyday_names_cover_hundreds_of_items(curation: ModuleType) -> None:
    assert len(curation.EVERYDAY_ALIASES) >= 400


def test_a_shared_name_is_no_items_alias(kb: KnowledgeBase) -> None:
    aliased = {
        key(alias): item.id
        for item in kb.items.values()
        for alias in item.aliases
        if key(alias) not in {key(item.name_ko)}
    }
    official = {key(item.name_ko) for item in kb.items.values()}
    wrongly = {
        name: aliased[name]
        for name in SHARED
        if name in aliased and name not in official | OFFICIAL_SHARED
    }
    assert wrongly == {}


def test_a_malformed_line_is_refused(curation: ModuleType, tmp_path: Path) -> None:
    bad = tmp_path / "knowledge_everyday_aliases.tsv"
    bad.write_text("19 택배 박스\n", encoding="utf-8")
    with pytest.raises(ValueError, match="expected"):
        curation._load_everyday_aliases(bad)
