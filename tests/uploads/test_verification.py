"""Uploads through the real REST API and WebSocket (embedded mode, local storage): what is
stored is the re-encoded photo alone, whatever was PUT, and a PUT URL writes once.

The S3 twin of these checks (moto's S3 server over HTTP) is in ``test_s3.py``.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from PIL import Image

from server.db import Database
from server.uploads.models import Upload
from tests.conftest import Stack
from tests.support.client import CoachClient
from tests.uploads import photos

pytestmark = pytest.mark.parametrize("stack", ["embedded"], indirect=True)


async def _ticket(stack: Stack, token: str, body: bytes, content_type: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        response = await http.post(
            "/api/v1/uploads", json={"content_type": content_type, "size": len(body)},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 201, response.text
    ticket: dict[str, Any] = response.json()
    return ticket


async def _put(ticket: dict[str, Any], body: bytes) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.put(ticket["url"], content=body, headers=ticket["headers"])


async def _upload(
    stack: Stack, client: CoachClient, body: bytes, content_type: str = "image/jpeg"
) -> dict[str, Any]:
    ticket = await _ticket(stack, client.token, body, content_type)
    put = await _put(ticket, body)
    assert put.status_code == 204, put.text
    return ticket


def _root(stack: Stack) -> Path:
    return stack.settings.data_dir / "uploads"


def _staging_path(stack: Stack, ticket: dict[str, Any]) -> Path:
    path = unquote(httpx.URL(ticket["url"]).path).removeprefix("/api/v1/uploads/local/")
    assert path.startswith("staging/")
    return _root(stack) / path


async def _row(stack: Stack, key: str) -> Upload:
    db = Database(stack.settings.sqlalchemy_url)
    try:
        async with db.session() as session:
            row = await session.get(Upload, key)
    finally:
        await db.dispose()
    assert row is not None
    return row


async def test_gps_and_camera_are_stripped_from_what_is_stored(
    stack: Stack, client: CoachClient
) -> None:
    body = photos.photo_with_gps()
    ticket = await _upload(stack, client, body)
    staged = _staging_path(stack, ticket)
    assert staged.read_bytes() == body  # the raw file waits, unverified, at its staging key
    assert not (_root(stack) / ticket["key"]).exists()

    events = await client.run_scan(upload_key=ticket["key"])
    assert events[-1]["type"] == "scan.done" and events[-1]["status"] == "completed", events

    stored = (_root(stack) / ticket["key"]).read_bytes()
    image = Image.open(io.BytesIO(stored))
    assert image.format == "JPEG" and image.size == (640, 480)
    assert len(image.getexif()) == 0 and "exif" not in image.info
    assert photos.CAMERA_MAKE.encode() not in stored
    assert photos.CAMERA_MODEL.encode() not in stored
    # The raw file is gone: an empty tombstone holds its key while the PUT URL lives.
    assert staged.read_bytes() == b""
    for path in _root(stack).rglob("*"):
        if path.is_file():
            assert photos.CAMERA_MAKE.encode() not in path.read_bytes(), path
    row = await _row(stack, ticket["key"])
    assert row.status == "ready" and row.stored_size == len(stored)

    # A second scan of it reads the clean copy; nothing is verified again.
    again = await client.run_scan(upload_key=ticket["key"])
    assert again[-1]["type"] == "scan.done" and again[-1]["status"] == "completed"
    assert (await _row(stack, ticket["key"])).verified_at == row.verified_at


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (photos.HTML, "image/jpeg", "not an image"),
        (photos.GIF_JS, "image/png", "GIF images are not accepted"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 64, "image/jpeg", "not a readable one"),
    ],
    ids=["html", "gif-js-polyglot", "jpeg-magic-then-garbage"],
)
async def test_a_file_that_is_not_an_image_is_refused_with_a_reason(
    stack: Stack, client: CoachClient, body: bytes, content_type: str, reason: str
) -> None:
    ticket = await _upload(stack, client, body, content_type)
    events = await client.run_scan(upload_key=ticket["key"])
    error = events[-1]
    assert error["type"] == "error" and error["code"] == "image_invalid", events
    assert reason in error["message"] and error["retryable"] is False
    assert not any(e["type"] == "scan.accepted" for e in events)
    # Nothing of it is kept, and asking again gives the same answer without reading it.
    assert _staging_path(stack, ticket).read_bytes() == b""
    assert not (_root(stack) / ticket["key"]).exists()
    row = await _row(stack, ticket["key"])
    assert row.status == "rejected" and row.reject_message == error["message"]
    again = await client.run_scan(upload_key=ticket["key"])
    assert again[-1]["code"] == "image_invalid" and again[-1]["message"] == error["message"]


async def test_a_jpeg_zip_polyglot_is_stored_as_its_pixels_only(
    stack: Stack, client: CoachClient
) -> None:
    ticket = await _upload(stack, client, photos.jpeg_with_zip())
    events = await client.run_scan(upload_key=ticket["key"])
    assert events[-1]["type"] == "scan.done" and events[-1]["status"] == "completed"
    stored = (_root(stack) / ticket["key"]).read_bytes()
    assert b"SECRET-PAYLOAD" not in stored and b"PK\x03\x04" not in stored


@pytest.mark.parametrize(
    "body",
    [photos.big_flat_png(), photos.png_header_bomb()],
    ids=["40mp-png-of-100kb", "header-claiming-50000x50000"],
)
async def test_an_image_bomb_is_refused_cheaply(
    stack: Stack, client: CoachClient, body: bytes
) -> None:
    assert len(body) < 200_000
    ticket = await _upload(stack, client, body, "image/png")
    started = time.perf_counter()
    events = await client.run_scan(upload_key=ticket["key"])
    elapsed = time.perf_counter() - started
    assert events[-1]["type"] == "error" and events[-1]["code"] == "image_invalid"
    assert "megapixels" in events[-1]["message"]
    # Refused from the header: no decode (a 40 MP decode takes about a second here, and
    # 610 MB); the time is the round trips and reading the file.
    assert elapsed < 1.0, elapsed


async def test_a_put_url_writes_once(stack: Stack, client: CoachClient) -> None:
    first = photos.small_jpeg()
    ticket = await _upload(stack, client, first)
    # The same URL again, before the upload is used: refused, the first file stays.
    second = await _put(ticket, b"X" * len(first))
    assert second.status_code == 403, second.text
    assert second.json()["error"]["code"] == "upload_forbidden"
    assert "used already" in second.json()["error"]["message"]
    assert _staging_path(stack, ticket).read_bytes() == first

    events = await client.run_scan(upload_key=ticket["key"])
    assert events[-1]["type"] == "scan.done" and events[-1]["status"] == "completed"
    stored = (_root(stack) / ticket["key"]).read_bytes()
    # After its use, still refused: the tombstone holds the staging key.
    third = await _put(ticket, first)
    assert third.status_code == 403
    assert (_root(stack) / ticket["key"]).read_bytes() == stored


async def test_a_forged_non_ascii_signature_is_refused_not_a_500(
    stack: Stack, client: CoachClient
) -> None:
    body = photos.small_jpeg()
    ticket = await _ticket(stack, client.token, body, "image/jpeg")
    url = httpx.URL(ticket["url"])
    forged = url.copy_set_param("sig", "é" * 64)
    async with httpx.AsyncClient() as http:
        response = await http.put(forged, content=body, headers=ticket["headers"])
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "upload_forbidden"
    assert not _staging_path(stack, ticket).exists()


async def test_scanning_before_the_put_says_so(stack: Stack, client: CoachClient) -> None:
    body = photos.small_jpeg()
    ticket = await _ticket(stack, client.token, body, "image/jpeg")
    events = await client.run_scan(upload_key=ticket["key"])
    assert events[-1]["code"] == "upload_not_found" and "PUT" in events[-1]["message"]
    assert (await _put(ticket, body)).status_code == 204
    events = await client.run_scan(upload_key=ticket["key"])
    assert events[-1]["type"] == "scan.done" and events[-1]["status"] == "completed"


async def test_an_upload_request_is_strict(stack: Stack, client: CoachClient) -> None:
    """Numbers must be numbers, as in the WebSocket messages: "1" and true are refused."""
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        for body in ({"content_type": "image/jpeg", "size": "1"},
                     {"content_type": "image/jpeg", "size": True},
                     {"content_type": "image/jpeg", "size": 1.5},
                     {"content_type": "image/jpeg", "size": 10, "extra": 1}):
            response = await http.post("/api/v1/uploads", json=body,
                                       headers={"Authorization": f"Bearer {client.token}"})
            assert response.status_code == 422, (body, response.text)
            assert response.json()["error"]["code"] == "invalid_message"
