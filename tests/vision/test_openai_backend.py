"""The OpenAI vision backend, over real HTTP against a local stand-in for the OpenAI API
(``fake_openai_vision``), and its fallback to the embedded classifier."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

from PIL import Image
from pydantic import SecretStr

from protocol.messages import Locale
from protocol.streams import OFFICIAL_PATH, Stream
from server.contracts import ScanInput
from server.settings import OpenAISettings
from server.vision.dataset import Sample
from server.vision.embedded import EmbeddedClassifier
from server.vision.openai_backend import OpenAIVisionClassifier
from tests.vision.conftest import jpeg_bytes
from tests.vision.fake_openai_vision import Canned, fake_openai

ANSWER = {
    "label": "pet_bottle",
    "name_ko": "생수 페트병",
    "name_en": "water PET bottle",
    "stream": "clear_pet",
    "confidence": 0.93,
    "material": {"value": "PET", "confidence": 0.9},
    "shape": {"value": "bottle", "confidence": 0.97},
    "parts": [
        {"value": "cap:PP", "confidence": 0.8},
        {"value": "label:PP film", "confidence": 0.7},
    ],
    "mixed": {"value": "yes", "confidence": 0.8},
    "contamination": {"value": "clean", "confidence": 0.7},
    "alternatives": [{"label": "plastic_bottle", "stream": "plastic", "confidence": 0.05}],
}


def _scan(data: bytes) -> ScanInput:
    return ScanInput(
        scan_id="s1",
        request_id="r1",
        session_id="sess",
        user_id="u",
        locale=Locale.KO,
        image=data,
        content_type="image/jpeg",
    )


def _settings(base_url: str, timeout_s: float = 5.0) -> OpenAISettings:
    return OpenAISettings(
        api_key=SecretStr("sk-test"),
        base_url=base_url,
        vision_model="gpt-4o-test",
        timeout_s=timeout_s,
    )


def _photo_with_gps(path: Path) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "SecretPhoneMaker"
    exif[0x8825] = {1: "N", 2: (37.0, 33.0, 59.0)}
    return jpeg_bytes(Image.open(path).convert("RGB"), exif=exif.tobytes())


async def test_answer_is_validated_into_a_classification(
    embedded: EmbeddedClassifier, validation_samples: list[Sample]
) -> None:
    async with fake_openai() as server:
        server.canned = Canned(content=json.dumps(ANSWER))
        backend = OpenAIVisionClassifier(_settings(server.base_url), fallback=embedded)
        try:
            result = await backend.classify(_scan(_photo_with_gps(validation_samples[0].path)))
        finally:
            await backend.aclose()

    assert result.model == "openai:gpt-4o-test"
    assert result.stream is Stream.CLEAR_PET
    assert (result.category.major, result.category.middle) == OFFICIAL_PATH[Stream.CLEAR_PET]
    assert result.mixed is not None and result.mixed.value == "yes"
    assert [p.value for p in result.parts] == ["cap:PP", "label:PP film"]

    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == "Bearer sk-test"
    sent = request["json"]
    assert sent["model"] == "gpt-4o-test"
    assert sent["response_format"] == {"type": "json_object"}
    image_part = next(p for p in sent["messages"][1]["content"] if p["type"] == "image_url")
    url = image_part["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    sent_jpeg = base64.b64decode(url.split(",", 1)[1])
    assert b"SecretPhoneMaker" not in sent_jpeg  # metadata stripped before leaving the server
    assert Image.open(io.BytesIO(sent_jpeg)).format == "JPEG"


async def test_server_error_falls_back_to_the_embedded_classifier(
    embedded: EmbeddedClassifier, validation_samples: list[Sample]
) -> None:
    data = validation_samples[0].path.read_bytes()
    async with fake_openai() as server:
        server.canned = Canned(status=500)
        backend = OpenAIVisionClassifier(_settings(server.base_url), fallback=embedded)
        try:
            result = await backend.classify(_scan(data))
        finally:
            await backend.aclose()
    assert len(server.requests) == 2  # one retry, then the fallback
    expected = embedded.classify_bytes(data)
    assert result.model == f"{expected.model} (fallback: http 500)"
    assert result.stream is expected.stream and result.label == expected.label


async def test_slow_server_times_out_and_falls_back(
    embedded: EmbeddedClassifier, validation_samples: list[Sample]
) -> None:
    async with fake_openai() as server:
        server.canned = Canned(content=json.dumps(ANSWER), delay_s=3.0)
        backend = OpenAIVisionClassifier(
            _settings(server.base_url, timeout_s=0.5), fallback=embedded
        )
        try:
            result = await backend.classify(_scan(validation_samples[1].path.read_bytes()))
        finally:
            await backend.aclose()
    assert result.model.endswith("(fallback: timeout)")
    assert result.model.startswith("efficientnet-lite0+")


async def test_invalid_answers_fall_back(
    embedded: EmbeddedClassifier, validation_samples: list[Sample]
) -> None:
    data = validation_samples[2].path.read_bytes()
    bad_stream = {**ANSWER, "stream": "landfill"}
    async with fake_openai() as server:
        backend = OpenAIVisionClassifier(_settings(server.base_url), fallback=embedded)
        try:
            server.canned = Canned(content="Sure! It is a bottle.")
            not_json = await backend.classify(_scan(data))
            server.canned = Canned(content=json.dumps(bad_stream))
            unknown_stream = await backend.classify(_scan(data))
        finally:
            await backend.aclose()
    assert not_json.model.endswith("(fallback: invalid json)")
    assert unknown_stream.model.endswith("(fallback: invalid answer)")


async def test_without_an_api_key_the_embedded_classifier_answers(
    embedded: EmbeddedClassifier, validation_samples: list[Sample]
) -> None:
    backend = OpenAIVisionClassifier(OpenAISettings(), fallback=embedded)
    result = await backend.classify(_scan(validation_samples[0].path.read_bytes()))
    assert result.model.endswith("(fallback: no api key)")
