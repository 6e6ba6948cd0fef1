"""The page at / without a browser: served with its own policies, no inline code, every file
it names is there."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.settings import Mode, S3Settings, Settings
from server.web.page import STATIC_DIR, page_csp


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    # No lifespan: serving static files needs none of the services.
    settings = Settings(mode=Mode.EMBEDDED, data_dir=tmp_path_factory.mktemp("web"))
    yield TestClient(create_app(settings))


def test_the_page_is_served_with_its_own_policy(http: TestClient) -> None:
    response = http.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    for directive in (
        "default-src 'self'", "script-src 'self'", "style-src 'self'",
        "img-src 'self' data: blob:", "media-src 'self' blob: mediastream:",
        "connect-src 'self'", "frame-ancestors 'none'",
    ):
        assert directive in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "camera=(self)" in response.headers["permissions-policy"]
    assert "geolocation=(self)" in response.headers["permissions-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_the_page_has_no_inline_code_and_every_file_it_names_is_served(http: TestClient) -> None:
    html = http.get("/").text
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all("src=" in attrs and not body.strip() for attrs, body in scripts)
    assert "<style" not in html and not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)  # no inline event handlers
    assets = re.findall(r'(?:src|href)="(/[^"]*)"', html)
    assert {"/static/app.js", "/static/style.css"} <= set(assets)
    for asset in assets:
        response = http.get(asset)
        assert response.status_code == 200, asset
        assert "content-security-policy" in response.headers
    assert http.get("/static/app.js").headers["content-type"].startswith(
        ("text/javascript", "application/javascript")
    )
    assert http.get("/static/style.css").headers["content-type"].startswith("text/css")


def test_every_control_has_a_label(http: TestClient) -> None:
    html = http.get("/").text
    labelled = set(re.findall(r'<label[^>]*for="([^"]+)"', html))
    wrapped = re.findall(r"<label[^>]*>(?:(?!</label>).)*?<(?:select|input)[^>]*id=\"([^\"]+)\"",
                         html, re.S)
    for control in re.findall(r"<(?:input|select|textarea|progress)[^>]*id=\"([^\"]+)\"", html):
        assert control in labelled or control in wrapped, control
    assert re.search(r'<html lang="(ko|en)"', html)


def test_the_api_keeps_its_own_policy(http: TestClient) -> None:
    response = http.get("/healthz")
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert "permissions-policy" not in response.headers
    missing = http.get("/static/nothing.js")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_the_static_files_ship_in_the_package() -> None:
    names = {p.name for p in STATIC_DIR.iterdir()}
    assert {"index.html", "app.js", "style.css"} <= names
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    # hatchling puts every file under the listed packages into the wheel, not only .py files.
    assert 'packages = ["protocol", "server", "workers"]' in pyproject


def test_distributed_mode_may_upload_to_the_bucket(tmp_path: Path) -> None:
    settings = Settings(
        mode=Mode.DISTRIBUTED, data_dir=tmp_path, database_url="sqlite+aiosqlite://",
        auth={"jwt_secret": "x"}, s3=S3Settings(endpoint_url="http://127.0.0.1:9000/x"),
    )
    assert b"connect-src 'self' http://127.0.0.1:9000;" in page_csp(settings)
