"""The OpenAI vision backend: sharper answers when an API key is configured.

The photo goes to an OpenAI-compatible chat-completions endpoint as an inline data URL (the
re-encoded, metadata-free JPEG from :mod:`server.vision.images`, never the original bytes, so
no GPS tag leaves the server). The model must answer with one JSON object; the answer is
validated into the same :class:`Classification` the embedded classifier produces. The official
category path is derived from the stream here rather than taken from the model, so it is always
spelled as in the Ministry's dictionary.

Any failure (no key, timeout, HTTP error, refusal, invalid JSON, a stream we do not know) falls
back to the embedded classifier, and the result's ``model`` says so, e.g.
``efficientnet-lite0+waste-head@1a2b3c4d (fallback: timeout)``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

import openai
from openai import AsyncOpenAI
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protocol.messages import Alternative, Classification, OfficialCategory, Signal
from protocol.streams import OFFICIAL_PATH, Stream
from server.contracts import ScanInput
from server.settings import OpenAISettings
from server.vision.cache import ImageClassifier
from server.vision.images import DecodedImage, decode_image

log = logging.getLogger(__name__)

_STREAMS = ", ".join(s.value for s in Stream)

SYSTEM_PROMPT = f"""\
You look at one photo from a household in South Korea and identify the single waste item in it,
so that the app can tell the user how to sort it under Korean rules.

Reply with exactly one JSON object and nothing else, with these keys:
- "label": short snake_case English name of the item, e.g. "pet_bottle", "paper_cup".
- "name_ko": the item's everyday Korean name; "name_en": its English name.
- "stream": where it is disposed of in Korea, one of: {_STREAMS}.
  Colourless PET drink bottles are "clear_pet"; other plastic containers "plastic";
  plastic film and bags "vinyl"; milk and juice cartons "paper_pack"; ceramics and drinking
  glasses "non_combustible"; anything soiled beyond rinsing or not recyclable "general".
- "confidence": your probability (0 to 1) that the stream is right.
- "material", "shape": objects {{"value": str, "confidence": 0..1}}.
- "parts": list of such objects, one per visible part as "part:material", e.g. "cap:PP".
- "mixed": {{"value": "yes" | "no", "confidence": ...}}: made of parts to separate?
- "contamination": {{"value": "clean" | "light" | "heavy", "confidence": ...}}.
- "alternatives": up to 3 objects {{"label": str, "stream": str, "confidence": 0..1}}.
If the photo shows no waste item, use stream "other" and a low confidence. Do not guess
certainty you do not have: a low confidence makes the app ask the user.
"""


class _Answer(BaseModel):
    """The part of :class:`Classification` the remote model fills in."""

    model_config = ConfigDict(extra="ignore")

    label: str = Field(min_length=1, max_length=64)
    name_ko: str = Field(min_length=1, max_length=64)
    name_en: str = Field(min_length=1, max_length=64)
    stream: Stream
    confidence: float = Field(ge=0, le=1)
    material: Signal | None = None
    shape: Signal | None = None
    parts: list[Signal] = Field(default_factory=list, max_length=8)
    mixed: Signal | None = None
    contamination: Signal | None = None
    alternatives: list[Alternative] = Field(default_factory=list, max_length=3)


class _Failure(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OpenAIVisionClassifier:
    """:class:`VisionStage` asking an OpenAI-compatible vision model, with a fallback that is
    handed the same decoded photo."""

    def __init__(
        self,
        settings: OpenAISettings,
        fallback: ImageClassifier,
        *,
        client: AsyncOpenAI | None = None,
    ) -> None:
        self._settings = settings
        self._fallback = fallback
        self._client = client
        if client is None and settings.api_key is not None:
            self._client = AsyncOpenAI(
                api_key=settings.api_key.get_secret_value(),
                base_url=settings.base_url,
                timeout=settings.timeout_s,
                # One retry at most: a scan is interactive, the fallback is right here.
                max_retries=1,
            )

    @property
    def model_name(self) -> str:
        return f"openai:{self._settings.vision_model}"

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def classify(self, scan: ScanInput) -> Classification:
        # Garbage is refused here (ImageRejected), before the API or the fallback sees it.
        decoded = await asyncio.to_thread(decode_image, scan.image)
        return await self.classify_image(scan, decoded)

    async def classify_image(self, scan: ScanInput, decoded: DecodedImage) -> Classification:
        if self._client is None:
            return await self._fall_back(scan, decoded, "no api key")
        try:
            # The whole exchange, retries included, gets one deadline.
            async with asyncio.timeout(self._settings.timeout_s):
                return await self._ask(self._client, decoded)
        except _Failure as exc:
            return await self._fall_back(scan, decoded, exc.reason)
        except (TimeoutError, openai.APITimeoutError):
            return await self._fall_back(scan, decoded, "timeout")
        except openai.APIStatusError as exc:
            return await self._fall_back(scan, decoded, f"http {exc.status_code}")
        except openai.APIConnectionError:
            return await self._fall_back(scan, decoded, "connection error")
        except openai.OpenAIError as exc:
            return await self._fall_back(scan, decoded, type(exc).__name__)

    async def _ask(self, client: AsyncOpenAI, decoded: DecodedImage) -> Classification:
        # Encoding is CPU work too: off the event loop.
        jpeg = await asyncio.to_thread(decoded.clean_jpeg)
        data_url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
        response = await client.chat.completions.create(
            model=self._settings.vision_model,
            messages=[
                {"role": "system", "content": SYSTEM_PROMPT},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this item and where does it go?"},
                        {"type": "image_url", "image_url": {"url": data_url, "detail": "low"}},
                    ],
                },
            ],
            response_format={"type": "json_object"},
            max_tokens=500,
            temperature=0,
        )
        if not response.choices:
            raise _Failure("empty response")
        message = response.choices[0].message
        if getattr(message, "refusal", None):
            raise _Failure("refused")
        return self._parse(message.content or "")

    def _parse(self, content: str) -> Classification:
        try:
            raw: Any = json.loads(content)
        except json.JSONDecodeError:
            raise _Failure("invalid json") from None
        try:
            answer = _Answer.model_validate(raw)
        except ValidationError as exc:
            log.info("vision answer failed validation: %s", exc.errors(include_url=False)[:3])
            raise _Failure("invalid answer") from None
        major, middle = OFFICIAL_PATH[answer.stream]
        return Classification.model_validate(
            {
                **answer.model_dump(),
                "category": OfficialCategory(major=major, middle=middle),
                "model": self.model_name,
            }
        )

    async def _fall_back(
        self, scan: ScanInput, decoded: DecodedImage, reason: str
    ) -> Classification:
        log.warning("vision backend %s failed (%s); using the fallback", self.model_name, reason)
        result = await self._fallback.classify_image(scan, decoded)
        return result.model_copy(update={"model": f"{result.model} (fallback: {reason})"})
