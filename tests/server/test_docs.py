"""The interactive docs work without the internet (issue 14): ``/docs`` (Swagger UI) and
``/redoc`` (ReDoc) load every file from this server, and their Content-Security-Policy names
no other host and allows each page's inline script by its hash only (``server/docs.py``).

Whether a browser then renders the pages is checked by hand (Chromium, every other host
blocked: both render, with no policy violation but ReDoc's footer logo, which it fetches from
its vendor and the policy blocks); these tests check what the server sends.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from server.app import create_app
from server.settings import Settings

PAGES = ("/docs", "/redoc")
_ASSET = re.compile(r'(?:src|href)="([^"]*)"')
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
#: What a docs page's policy may name: this origin, its own inline scripts by hash, inline
#: styles, ``data:`` images and ReDoc's ``blob:`` worker. No host, no wildcard.
_ALLOWED = {
    "default-src": {"'none'"},
    "script-src": {"'self'"},
    "style-src": {"'self'", "'unsafe-inline'"},
    "img-src": {"'self'", "data:"},
    "connect-src": {"'self'"},
    "worker-src": {"blob:"},
    "frame-ancestors": {"'none'"},
    "base-uri": {"'none'"},
    "form-action": {"'none'"},
}


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    # No start-up: the docs need neither the database nor anything else it builds.
    transport = httpx.ASGITransport(app=create_app(Settings(data_dir=tmp_path)))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def _policy(response: httpx.Response) -> dict[str, list[str]]:
    directives = [d.split() for d in response.headers["content-security-policy"].split(";")]
    return {d[0]: d[1:] for d in directives if d}


def _sha256(script: str) -> str:
    return f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"


@pytest.mark.parametrize("path", PAGES)
async def test_a_docs_page_loads_every_file_from_this_server(
    http: httpx.AsyncClient, path: str
) -> None:
    page = await http.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert not re.search(r"https?:|//", page.text), "a URL to another host"
    assets = _ASSET.findall(page.text)
    kinds = {"js": "text/javascript", "css": "text/css", "png": "image/png"}
    # Swagger UI: its bundle, stylesheet and the favicon; ReDoc: its bundle and the favicon.
    want = {"js", "css", "png"} if path == "/docs" else {"js", "png"}
    assert {a.rsplit(".", 1)[-1] for a in assets} == want
    for url in assets:
        assert url.startswith("/docs/assets/"), url
        asset = await http.get(url)
        assert asset.status_code == 200, url
        expected = kinds[url.rsplit(".", 1)[-1]]
        # Python before 3.12 names JavaScript application/javascript; browsers take both.
        assert asset.headers["content-type"].split(";")[0] in (
            expected, "application/javascript" if expected == "text/javascript" else expected
        ), url
        assert len(asset.content) > (100_000 if expected != "image/png" else 1_000), url


async def test_the_pages_load_the_openapi_document(http: httpx.AsyncClient) -> None:
    swagger = (await http.get("/docs")).text
    redoc = (await http.get("/redoc")).text
    urls = {
        *re.findall(r"url: '([^']*)'", swagger),
        *re.findall(r'spec-url="([^"]*)"', redoc),
    }
    assert urls == {"/openapi.json"}
    schema = await http.get("/openapi.json")
    assert schema.status_code == 200
    assert schema.json()["openapi"].startswith("3.")


@pytest.mark.parametrize("path", [*PAGES, "/docs/oauth2-redirect"])
async def test_a_docs_page_allows_only_its_own_inline_script(
    http: httpx.AsyncClient, path: str
) -> None:
    page = await http.get(path)
    assert page.status_code == 200
    policy = _policy(page)
    for directive, sources in policy.items():
        allowed = _ALLOWED[directive]
        assert all(s in allowed or s.startswith("'sha256-") for s in sources), (
            directive, sources,
        )
        if directive != "script-src":
            assert not any(s.startswith("'sha256-") for s in sources), directive
    assert "http" not in page.headers["content-security-policy"]
    assert "*" not in page.headers["content-security-policy"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert page.headers["x-frame-options"] == "DENY"
    # Exactly the page's inline scripts, by hash: a changed script would be refused, not run.
    hashes = {s for s in policy["script-src"] if s.startswith("'sha256-")}
    assert hashes == {_sha256(s) for s in _INLINE_SCRIPT.findall(page.text)}
    if path != "/redoc":  # ReDoc starts from its <redoc> element, with no inline script
        assert hashes
    assert ("worker-src" in policy) == (path == "/redoc")


async def test_the_assets_get_the_api_policy(
    http: httpx.AsyncClient,
) -> None:
    api_policy = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    asset = await http.get("/docs/assets/swagger-ui-bundle.js")
    assert asset.headers["content-security-policy"] == api_policy
    assert asset.headers["x-content-type-options"] == "nosniff"
    missing = await http.get("/docs/assets/nothing.js")
    assert missing.status_code == 404
    assert missing.headers["content-security-policy"] == api_policy


async def test_behind_a_prefix_the_pages_point_under_it(tmp_path: Path) -> None:
    """A proxy that strips ``/coach`` (ASGI ``root_path``): the page's URLs, and so its inline
    script and that script's hash, carry the prefix, and the page keeps its policy."""
    transport = httpx.ASGITransport(app=create_app(Settings(data_dir=tmp_path)), root_path="/coach")
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        page = await http.get("/coach/docs")
        assert page.status_code == 200
        assert "url: '/coach/openapi.json'" in page.text
        hashes = {s for s in _policy(page)["script-src"] if s.startswith("'sha256-")}
        assert hashes == {_sha256(s) for s in _INLINE_SCRIPT.findall(page.text)}
        for url in _ASSET.findall(page.text):
            assert url.startswith("/coach/docs/assets/"), url
            assert (await http.get(url)).status_code == 200, url
        # The no-store routes are matched without the prefix too.
        refused = await http.get("/coach/api/v1/users/me")
        assert refused.headers.get("cache-control") == "no-store"
