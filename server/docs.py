"""The interactive API docs, Swagger UI at ``/docs`` and ReDoc at ``/redoc``, without the
internet.

FastAPI's own pages load Swagger UI and ReDoc from a public CDN, which many deployments of this
service cannot reach: there the pages stayed blank. The same files come here from an installed
package, ``fastapi-offline`` (its ``static`` folder: swagger-ui-dist's bundle and stylesheet,
ReDoc's standalone bundle, a favicon, released with the package), served by us under
``/docs/assets``. Only those files are used, not the package's app factory: it builds a plain
``FastAPI`` (ours is ``server.app._App``) and gives its pages no policy.

Each page is FastAPI's own HTML (``fastapi.openapi.docs``) with the asset URLs pointed here.
It starts its UI with an inline script, so the page brings its own Content-Security-Policy,
which ``server.app.SecurityHeaders`` keeps on these paths only: scripts from this origin and
that inline script by its sha256, computed from the very text served (the script holds the
page's URLs, which follow the ASGI ``root_path``), and nothing else inline; no other host for
anything. Swagger UI and ReDoc set inline styles as they render, so styles may be inline.
"""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
#: Where Swagger UI returns after an OAuth2 authorisation (FastAPI's default path). The API
#: declares only bearer tokens today, so it is unused until an OAuth2 scheme is added.
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
ASSETS_URL = "/docs/assets"
#: The pages that set their own policy; every other response gets the API's.
PAGES = frozenset({DOCS_URL, REDOC_URL, OAUTH2_REDIRECT_URL})

#: The body of each ``<script>`` without attributes: the inline ones (those with ``src`` load
#: a file from this origin, which ``'self'`` allows).
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def csp_for(html: str, *, workers: bool = False) -> str:
    """The policy of a docs page: its inline scripts by hash, the rest from this origin only.
    ``data:`` images are Swagger UI's icons (in its stylesheet); ``workers`` lets ReDoc run its
    search in a worker it makes from a ``blob:`` URL (made by its own script, which the policy
    already had to allow)."""
    hashes = "".join(
        f" 'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
        for s in _INLINE_SCRIPT.findall(html)
    )
    return (
        f"default-src 'none'; script-src 'self'{hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; "
        + ("worker-src blob:; " if workers else "")
        + "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )


def _page(response: HTMLResponse, *, workers: bool = False) -> HTMLResponse:
    html = bytes(response.body).decode()
    response.headers["content-security-policy"] = csp_for(html, workers=workers)
    return response


def install(app: FastAPI) -> None:
    """Serve the assets and the three pages. The app must be built with ``docs_url=None`` and
    ``redoc_url=None``, so that FastAPI adds no page of its own that loads from the CDN."""
    assert app.docs_url is None and app.redoc_url is None, "FastAPI's CDN pages are still on"
    # ``packages=`` finds the folder without importing the package; a missing folder (the
    # package absent, or reorganised by an upgrade) fails here, at start-up.
    app.mount(
        ASSETS_URL, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-assets"
    )

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return _page(
            get_swagger_ui_html(
                openapi_url=f"{root}{app.openapi_url}",
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
                swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
                oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_URL}",
                init_oauth=app.swagger_ui_init_oauth,
                swagger_ui_parameters=app.swagger_ui_parameters,
            )
        )

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return _page(get_swagger_ui_oauth2_redirect_html())

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return _page(
            get_redoc_html(
                openapi_url=f"{root}{app.openapi_url}",
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
                with_google_fonts=False,
            ),
            workers=True,
        )
