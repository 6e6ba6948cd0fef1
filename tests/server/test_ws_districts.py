"""District rules end to end, in both modes: a scan and a question with a location in a
district with its own rule get that rule, named; a district without one gets the national
rule; a question about a scan uses the scan's location. The stand-in vision says "PET bottle";
the coach (image ``REALCOACH``) and the chat are the product's own."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.messages import Locale
from protocol.streams import Stream
from server.coach.prompts import text
from server.knowledge.kb import get_knowledge_base
from tests.support.client import CoachClient

pytestmark = pytest.mark.timeout(120)

JEJU_CITY_HALL = {"lat": 33.4996, "lon": 126.5312}
GANGNAM_OFFICE = {"lat": 37.5172, "lon": 127.0473}


def _jeju_rule(stream: Stream) -> tuple[str, str]:
    """The id and the Korean sentence of Jeju City's rule for ``stream``."""
    kb = get_knowledge_base()
    rule = kb.local_rule("50110", stream)
    assert rule is not None
    header = text(kb.district_names["50110"], Locale.KO)
    return rule.id, f"{header} 기준: {text(rule.note, Locale.KO)}"


def _event(events: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(e for e in events if e["type"] == kind)


async def _chat(client: CoachClient, **fields: Any) -> dict[str, Any]:
    request_id = client.next_id()
    await client.send({"type": "chat.message", "request_id": request_id, **fields})
    events = await client.recv_until(
        lambda e: e["type"] in ("chat.done", "error") and e.get("request_id") == request_id
    )
    return events[-1]


async def test_a_scan_in_jeju_gets_jeju_city_rule(client: CoachClient) -> None:
    events = await client.run_scan(b"REALCOACH", location=JEJU_CITY_HALL)
    assert events[-1]["status"] == "completed", events[-1]
    done = _event(events, "coaching.done")
    rule_id, sentence = _jeju_rule(Stream.CLEAR_PET)
    assert done["text"].endswith(sentence)
    assert rule_id in done["rule_ids"]
    assert done["district"] == {
        "code": "50110",
        "name": "제주특별자치도 제주시",
        "local_rule": True,
    }

    # A question about that scan, sent without a location, uses the scan's.
    scan_id = _event(events, "scan.accepted")["scan_id"]
    answer = await _chat(client, text="뚜껑은 어떻게 해요?", scan_id=scan_id)
    assert answer["type"] == "chat.done" and answer["outcome"] == "answered", answer
    assert answer["district"]["code"] == "50110"
    assert "제주 제주시 기준:" in answer["text"]


async def test_a_scan_in_gangnam_gets_the_national_rule(client: CoachClient) -> None:
    events = await client.run_scan(b"REALCOACH", location=GANGNAM_OFFICE)
    done = _event(events, "coaching.done")
    assert done["district"] == {"code": "11680", "name": "서울특별시 강남구", "local_rule": False}
    assert not any(rule_id.startswith("local.") for rule_id in done["rule_ids"])
    assert "기준:" not in done["text"]
    without = _event(await client.run_scan(b"REALCOACH"), "coaching.done")
    assert without["district"] is None
    assert without["text"] == done["text"]


async def test_a_question_with_a_location_gets_its_district_rule(client: CoachClient) -> None:
    rule_id, sentence = _jeju_rule(Stream.PAPER)
    answer = await _chat(client, text="피자 박스 어떻게 버려요?", location=JEJU_CITY_HALL)
    assert answer["outcome"] == "answered", answer
    assert sentence in answer["text"]
    assert rule_id in answer["rule_ids"]
    assert answer["district"]["local_rule"] is True

    national = await _chat(client, text="피자 박스 어떻게 버려요?", location=GANGNAM_OFFICE)
    assert national["district"]["local_rule"] is False
    assert sentence not in national["text"]
    assert not any(r.startswith("local.") for r in national["rule_ids"])
