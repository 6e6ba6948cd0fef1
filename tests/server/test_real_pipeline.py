"""The product's own stages end to end over the WebSocket (embedded mode, no stand-ins):
the real classifier, the grounded coach, the collection points from the packaged snapshot.

Photos are held-out photos from ../shared/data (TrashNet and more_photos; tests may read it,
the product never does). Without that folder the photo tests are skipped, saying why.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from protocol.messages import Locale
from protocol.streams import Stream
from server.knowledge.kb import get_knowledge_base
from server.vision.clarify import clarification_for
from server.vision.dataset import list_samples, split, three_way_split
from server.vision.embedded import EmbeddedClassifier
from tests.conftest import ServerThread, make_settings
from tests.support.client import CoachClient

pytestmark = pytest.mark.timeout(180)

TRASHNET = Path(__file__).resolve().parents[3] / "shared" / "data" / "trashnet"
MORE_PHOTOS = TRASHNET.parent / "more_photos"
CITY_HALL = {"lat": 37.5665, "lon": 126.978}
needs_photos = pytest.mark.skipif(
    not TRASHNET.is_dir(), reason=f"{TRASHNET} (the shared TrashNet photos) is not present"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    settings = make_settings("embedded", tmp_path_factory.mktemp("real"))
    settings = settings.model_copy(update={"stages_factory": None})
    thread = ServerThread(settings)
    thread.start()
    yield thread
    thread.stop()


@pytest.fixture
async def client(server: ServerThread) -> AsyncIterator[CoachClient]:
    base = f"http://127.0.0.1:{server.settings.port}"
    async with httpx.AsyncClient(base_url=base) as http:
        token = (await http.post("/api/v1/auth/guest")).json()["access_token"]
    c = CoachClient(base.replace("http", "ws") + "/api/v1/coach/ws", token, locale="en")
    await c.connect()
    yield c
    await c.close()


def holdout() -> list[Path]:
    _, validation = split(list_samples(TRASHNET))
    return [s.path for s in validation]


@needs_photos
async def test_a_photo_streams_real_classification_coaching_and_places(
    client: CoachClient,
) -> None:
    classifier = EmbeddedClassifier()
    photo = next(
        p for p in holdout()
        if p.parent.name == "glass"
        and clarification_for(classifier.classify_bytes(p.read_bytes()), Locale.EN) is None
    )
    events = await client.run_scan(photo.read_bytes(), location=CITY_HALL)
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["scan.accepted", "scan.classified"]
    assert kinds[-1] == "scan.done" and events[-1]["status"] == "completed", events[-1]
    classification = events[1]["classification"]
    assert classification["model"].startswith("efficientnet-lite0")
    assert classification["stream"] == "glass"
    done = next(e for e in events if e["type"] == "coaching.done")
    assert done["backend"] == "embedded" and done["rule_ids"]
    kb = get_knowledge_base()
    for rule_id in done["rule_ids"]:
        assert kb.rule(rule_id).id == rule_id  # every cited rule exists
    deltas = [e["text"] for e in events if e["type"] == "coaching.delta"]
    assert len(deltas) > 3 and "".join(deltas) == done["text"]
    bins = next(e for e in events if e["type"] == "bins.suggested")
    assert bins["location_used"] is True
    distances = [p["distance_m"] for p in bins["places"]]
    assert distances == sorted(distances)


@needs_photos
async def test_an_unsure_photo_asks_before_coaching(client: CoachClient) -> None:
    classifier = EmbeddedClassifier()
    unsure = None
    for path in holdout():
        question = clarification_for(classifier.classify_bytes(path.read_bytes()), Locale.EN)
        if question is not None:
            unsure = (path, question)
            break
    assert unsure is not None, "no held-out photo is below the clarify threshold"
    path, question = unsure
    rid = await client.scan(path.read_bytes())
    events = await client.recv_until(lambda e: e["type"] == "scan.clarify")
    assert "coaching.delta" not in [e["type"] for e in events]
    clarify = events[-1]
    assert [c["label"] for c in clarify["choices"]] == [c.label for c in question.choices]
    pick = clarify["choices"][1]
    await client.send({"type": "scan.clarify.answer", "request_id": rid, "choice": pick["label"]})
    events = await client.recv_until(lambda e: e["type"] == "scan.done")
    confirmed = events[0]
    assert confirmed["type"] == "scan.classified"
    assert confirmed["classification"]["confirmed"] is True
    assert confirmed["classification"]["stream"] == pick["stream"]
    assert events[-1]["status"] == "completed"


@pytest.mark.skipif(not MORE_PHOTOS.is_dir(), reason=f"{MORE_PHOTOS} is not present")
async def test_a_real_battery_photo_is_coached_to_the_nearest_battery_bins(
    client: CoachClient,
) -> None:
    """A held-out battery photo through the real classifier: the battery stream, the battery
    rule, and battery bins near the user, never the general-waste bag."""
    classifier = EmbeddedClassifier()
    samples = [s for s in list_samples(MORE_PHOTOS) if s.label == "battery"]
    parts = three_way_split(samples)
    photo = next(
        s.path
        for s in samples
        if parts[s.path] == "holdout"
        and clarification_for(classifier.classify_bytes(s.path.read_bytes()), Locale.EN) is None
    )
    events = await client.run_scan(photo.read_bytes(), location=CITY_HALL)
    classification = events[1]["classification"]
    assert (classification["label"], classification["stream"]) == ("battery", "battery")
    assert events[-1]["status"] == "completed", events[-1]
    done = next(e for e in events if e["type"] == "coaching.done")
    kb = get_knowledge_base()
    assert {kb.rule(r).stream for r in done["rule_ids"]} == {Stream.BATTERY}
    bins = next(e for e in events if e["type"] == "bins.suggested")
    assert bins["stream"] == "battery"
    assert bins["places"] and {p["kind"] for p in bins["places"]} == {"lamp_battery_bin"}


async def test_not_an_image_fails_the_scan_with_image_invalid(client: CoachClient) -> None:
    events = await client.run_scan(b"this is a text file, not a photo")
    assert [e["type"] for e in events] == ["scan.accepted", "scan.done"]
    error = events[-1]["error"]
    assert events[-1]["status"] == "failed"
    assert error["code"] == "image_invalid" and error["retryable"] is False


async def test_nearest_battery_bins_from_city_hall(server: ServerThread) -> None:
    base = f"http://127.0.0.1:{server.settings.port}"
    async with httpx.AsyncClient(base_url=base) as http:
        response = await http.get(
            "/api/v1/locations/nearby",
            params={"lat": 37.5665, "lon": 126.978, "stream": "battery", "limit": 5},
        )
    assert response.status_code == 200, response.text
    places = response.json()["places"]
    assert len(places) == 5
    assert {p["kind"] for p in places} == {"lamp_battery_bin"}
    distances = [p["distance_m"] for p in places]
    assert distances == sorted(distances)
    for p in places:
        assert p["links"]["kakao"].startswith("https://map.kakao.com/link/to/")
        assert "destination=" in p["links"]["google"]


async def test_item_search_endpoint(server: ServerThread) -> None:
    base = f"http://127.0.0.1:{server.settings.port}"
    async with httpx.AsyncClient(base_url=base) as http:
        response = await http.get("/api/v1/waste/items/search", params={"q": "우유팩"})
    assert response.status_code == 200
    top = response.json()["items"][0]
    assert top["category"]["major"] == "재활용폐기물"
    assert top["category"]["middle"] == "종이팩"


async def test_battery_scan_suggests_the_nearest_battery_bins(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Vision stands in (it has no battery class); coaching and locations are the real ones."""
    settings = make_settings("embedded", tmp_path_factory.mktemp("battery"))
    settings = settings.model_copy(
        update={"stages_factory": "tests.support.stages:build_battery_with_real_locations"}
    )
    thread = ServerThread(settings)
    thread.start()
    try:
        base = f"http://127.0.0.1:{settings.port}"
        async with httpx.AsyncClient(base_url=base) as http:
            token = (await http.post("/api/v1/auth/guest")).json()["access_token"]
            rest = (await http.get(
                "/api/v1/locations/nearby",
                params={"lat": 37.5665, "lon": 126.978, "stream": "battery", "limit": 5},
            )).json()
        c = CoachClient(base.replace("http", "ws") + "/api/v1/coach/ws", token, locale="en")
        await c.connect()
        events = await c.run_scan(b"photo", location=CITY_HALL)
        await c.close()
    finally:
        thread.stop()
    bins = next(e for e in events if e["type"] == "bins.suggested")
    assert bins["stream"] == "battery" and bins["location_used"] is True
    places = bins["places"]
    assert len(places) == 5
    assert {p["kind"] for p in places} == {"lamp_battery_bin"}
    assert [p["distance_m"] for p in places] == sorted(p["distance_m"] for p in places)
    assert [p["id"] for p in places] == [p["id"] for p in rest["places"]]
    coaching = next(e for e in events if e["type"] == "coaching.done")
    assert coaching["rule_ids"] and coaching["backend"] == "embedded"
