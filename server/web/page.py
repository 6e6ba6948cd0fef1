"""Serves the page at ``/`` and its files under ``/static``, with the page's own policies.

The API's responses forbid everything (``server/app.py``); the page needs its own scripts,
styles, the camera and the position, and the WebSocket and REST calls of its own origin. In
distributed mode uploads go straight to S3, so the bucket's origin may be connected to as well
(the bucket also needs a CORS rule allowing the page's origin to PUT).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from server.settings import Settings

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Paths that get the page's policies instead of the API's.
PAGE_PATHS = frozenset({"/", "/index.html"})
STATIC_PREFIX = "/static/"
#: The page may use the camera and the position; nothing else, and nobody may frame it.
PERMISSIONS_POLICY = b"camera=(self), geolocation=(self), microphone=(), payment=(), usb=()"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    # no-cache: revalidated every time (ETag), so a new version shows at the next load.
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def mount(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


def is_page_path(path: str) -> bool:
    return path in PAGE_PATHS or path.startswith(STATIC_PREFIX)


def page_csp(settings: Settings) -> bytes:
    """The page's Content-Security-Policy: its own files only, no inline code."""
    connect = ["'self'"]
    if not settings.embedded:
        connect.append(_s3_origin(settings))
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data: blob:",
            "media-src 'self' blob: mediastream:",
            f"connect-src {' '.join(connect)}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    ).encode()


def _s3_origin(settings: Settings) -> str:
    if settings.s3.endpoint_url:
        parts = urlsplit(settings.s3.endpoint_url)
        return f"{parts.scheme}://{parts.netloc}"
    # boto3 signs virtual-hosted URLs: https://<bucket>.s3.<region>.amazonaws.com/...
    bucket, region = settings.s3.bucket, settings.s3.region
    return f"https://{bucket}.s3.{region}.amazonaws.com https://{bucket}.s3.amazonaws.com"
