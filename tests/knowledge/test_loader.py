"""The loader refuses broken data with a message naming the file and the record at fault."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.knowledge.kb import KnowledgeBase, KnowledgeBaseError


def _edit_yaml(path: Path, edit: Any) -> None:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(doc)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")


def _edit_items(path: Path, edit: Any) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    edit(doc)
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")


def test_the_untouched_copy_loads(data_copy: Path) -> None:
    kb = KnowledgeBase.load(data_copy)
    assert len(kb.items) == 730
    assert kb.version.startswith("rules ")


def test_rule_missing_a_required_field(data_copy: Path) -> None:
    def drop_bin(doc: dict[str, Any]) -> None:
        rule = next(r for r in doc["rules"] if r["id"] == "item.receipt")
        del rule["bin"]

    _edit_yaml(data_copy / "rules.yaml", drop_bin)
    with pytest.raises(
        KnowledgeBaseError, match=r"rules\.yaml: record #\d+ \(id item\.receipt\).*bin"
    ):
        KnowledgeBase.load(data_copy)


def test_rule_with_an_unknown_stream(data_copy: Path) -> None:
    def bad_stream(doc: dict[str, Any]) -> None:
        doc["rules"][0]["stream"] = "moon_rocks"

    _edit_yaml(data_copy / "rules.yaml", bad_stream)
    with pytest.raises(KnowledgeBaseError, match=r"id stream\.paper.*stream"):
        KnowledgeBase.load(data_copy)


def test_missing_category_rule(data_copy: Path) -> None:
    def drop_lamp(doc: dict[str, Any]) -> None:
        doc["rules"] = [r for r in doc["rules"] if r["id"] != "stream.lamp"]

    _edit_yaml(data_copy / "rules.yaml", drop_lamp)
    with pytest.raises(KnowledgeBaseError, match=re.escape("no category rule 'stream.lamp'")):
        KnowledgeBase.load(data_copy)


def test_item_pointing_at_a_rule_that_does_not_exist(data_copy: Path) -> None:
    def dangling(doc: dict[str, Any]) -> None:
        item = next(i for i in doc["items"] if i["id"] == 736)
        item["rule_ids"] = ["item.bones", "item.does_not_exist"]

    _edit_items(data_copy / "items.json", dangling)
    with pytest.raises(
        KnowledgeBaseError, match=re.escape("item 736 refers to unknown rule 'item.does_not_exist'")
    ):
        KnowledgeBase.load(data_copy)


def test_item_without_a_category(data_copy: Path) -> None:
    def no_categories(doc: dict[str, Any]) -> None:
        doc["items"][5]["categories"] = []

    _edit_items(data_copy / "items.json", no_categories)
    with pytest.raises(KnowledgeBaseError, match=r"items\.json: record #5 .*categories"):
        KnowledgeBase.load(data_copy)


def test_duplicate_item_id(data_copy: Path) -> None:
    def duplicate(doc: dict[str, Any]) -> None:
        doc["items"].append(doc["items"][0])

    _edit_items(data_copy / "items.json", duplicate)
    with pytest.raises(KnowledgeBaseError, match="item id 16 appears twice"):
        KnowledgeBase.load(data_copy)


def test_items_file_that_is_not_json(data_copy: Path) -> None:
    (data_copy / "items.json").write_text('{"version": "x", "items": [', encoding="utf-8")
    with pytest.raises(KnowledgeBaseError, match=re.escape("items.json: not valid JSON")):
        KnowledgeBase.load(data_copy)


def test_missing_version(data_copy: Path) -> None:
    _edit_yaml(data_copy / "rules.yaml", lambda doc: doc.pop("version"))
    with pytest.raises(KnowledgeBaseError, match=re.escape("rules.yaml: 'version' must be")):
        KnowledgeBase.load(data_copy)


def test_local_rule_naming_a_district_by_its_2022_code(data_copy: Path) -> None:
    def old_code(doc: dict[str, Any]) -> None:
        doc["districts"]["42110"] = {"ko": "강원 춘천시", "en": "Chuncheon"}
        doc["rules"][0]["districts"] = ["42110"]

    _edit_yaml(data_copy / "local_rules.yaml", old_code)
    with pytest.raises(KnowledgeBaseError, match=r"by its 2022 code; use the current one"):
        KnowledgeBase.load(data_copy)


def test_local_rule_for_a_district_without_a_name(data_copy: Path) -> None:
    def unnamed(doc: dict[str, Any]) -> None:
        doc["rules"][0]["districts"] = ["11680"]

    _edit_yaml(data_copy / "local_rules.yaml", unnamed)
    with pytest.raises(KnowledgeBaseError, match=r"names district 11680, which is not in"):
        KnowledgeBase.load(data_copy)


def test_two_local_rules_for_one_district_and_stream(data_copy: Path) -> None:
    def twice(doc: dict[str, Any]) -> None:
        doc["rules"][1]["streams"] = ["plastic"]

    _edit_yaml(data_copy / "local_rules.yaml", twice)
    with pytest.raises(KnowledgeBaseError, match=r"two rules for stream 'plastic'"):
        KnowledgeBase.load(data_copy)


def test_local_rule_without_a_source(data_copy: Path) -> None:
    def unsourced(doc: dict[str, Any]) -> None:
        doc["rules"][0]["sources"] = []

    _edit_yaml(data_copy / "local_rules.yaml", unsourced)
    with pytest.raises(KnowledgeBaseError, match=r"local_rules\.yaml: record #0.*sources"):
        KnowledgeBase.load(data_copy)
