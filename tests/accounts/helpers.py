"""Sign-in steps shared by the accounts tests, done the way a browser or app does them."""

from __future__ import annotations

from typing import Any

import httpx


async def provider_redirect(authorize_url: str) -> str:
    """Visit the provider's authorization URL over HTTP; return where it sends the browser."""
    async with httpx.AsyncClient() as browser:
        response = await browser.get(authorize_url)
    assert response.status_code == 302, response.text
    return response.headers["location"]


async def start(api: httpx.AsyncClient, provider: str) -> tuple[str, str]:
    """Our authorize endpoint, as a single-page app calls it: (provider URL, state)."""
    response = await api.get(f"/api/v1/auth/{provider}/authorize", params={"redirect": "false"})
    assert response.status_code == 200, response.text
    body = response.json()
    return body["url"], body["state"]


async def browser_sign_in(api: httpx.AsyncClient, provider: str) -> dict[str, Any]:
    """The whole redirect flow: our redirect, the provider's page, our callback."""
    response = await api.get(f"/api/v1/auth/{provider}/authorize")
    assert response.status_code == 302, response.text
    back = await provider_redirect(response.headers["location"])
    assert back.startswith(f"http://testserver/api/v1/auth/{provider}/callback?")
    callback = await api.get(back)
    assert callback.status_code == 200, callback.text
    tokens: dict[str, Any] = callback.json()
    return tokens


def bearer(tokens: dict[str, Any] | str) -> dict[str, str]:
    token = tokens if isinstance(tokens, str) else tokens["access_token"]
    return {"Authorization": f"Bearer {token}"}
