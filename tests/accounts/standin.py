"""Local stand-ins for Kakao, Naver and Google sign-in, served over real HTTP.

The real providers cannot be reached from tests, so this small server speaks each one's
documented protocol on loopback: the authorization endpoint (redirects back with ``code`` and
``state``), the token endpoint (checks the code, the client secret, the redirect URI and the
PKCE ``code_verifier`` against the S256 challenge), Kakao's and Naver's user-info endpoints
with their own response and error shapes, and Google's JWKS with ID tokens signed by an RSA key
generated for the test run. Paths mirror the real ones under a per-provider prefix.

Failure injection (``fail``) makes a provider answer 500 or stall past our timeout.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from jose import jwk, jwt

PROVIDERS = ("kakao", "naver", "google")
GOOGLE_ISSUER = "https://accounts.google.com"
#: The Kakao app id of the app under test; tokens can be minted for other apps too.
KAKAO_APP_ID = 1001


@dataclass(frozen=True)
class Person:
    subject: str
    name: str


@dataclass(frozen=True)
class SigningKey:
    """An RSA key pair that signs ID tokens the way Google does (RS256, ``kid`` header)."""

    kid: str
    pem: bytes

    @classmethod
    def generate(cls, kid: str) -> SigningKey:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls(kid, pem)

    def sign(self, claims: dict[str, Any]) -> str:
        token: str = jwt.encode(claims, self.pem, algorithm="RS256", headers={"kid": self.kid})
        return token

    def public_jwk(self) -> dict[str, Any]:
        public: dict[str, Any] = jwk.construct(self.pem, "RS256").public_key().to_dict()
        return {**public, "kid": self.kid, "use": "sig"}


@dataclass
class Grant:
    provider: str
    client_id: str
    redirect_uri: str
    challenge: str
    person: Person
    nonce: str | None


@dataclass
class StandIn:
    clients: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {
            p: (f"{p}-client", f"{p}-secret-{secrets.token_hex(4)}") for p in PROVIDERS
        }
    )
    #: Who "signs in" at each provider's authorization page next.
    person: dict[str, Person] = field(
        default_factory=lambda: {p: Person(f"{p}-user-1", f"{p} one") for p in PROVIDERS}
    )
    #: provider -> "500" or "slow": every endpoint of that provider misbehaves.
    fail: dict[str, str] = field(default_factory=dict)
    #: Well past the tests' provider timeout (2 s in conftest.py), so a stall is always one.
    slow_s: float = 8.0
    key: SigningKey = field(default_factory=lambda: SigningKey.generate("g1"))
    codes: dict[str, Grant] = field(default_factory=dict)
    access_tokens: dict[str, tuple[str, Person]] = field(default_factory=dict)
    token_apps: dict[str, int] = field(default_factory=dict)
    base_url: str = ""

    # ------------------------------------------------------------------ helpers for tests

    def id_token(
        self,
        person: Person,
        *,
        aud: str | None = None,
        iss: str = GOOGLE_ISSUER,
        exp_in: int = 3600,
        nonce: str | None = None,
        key: SigningKey | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": iss,
            "aud": aud or self.clients["google"][0],
            "sub": person.subject,
            "name": person.name,
            "iat": now - 5,
            "exp": now + exp_in,
        }
        if nonce is not None:
            claims["nonce"] = nonce
        return (key or self.key).sign(claims)

    def access_token_for(self, provider: str, person: Person, *, app_id: int = KAKAO_APP_ID) -> str:
        token = f"{provider}-at-{secrets.token_urlsafe(16)}"
        self.access_tokens[token] = (provider, person)
        self.token_apps[token] = app_id
        return token

    # ------------------------------------------------------------------ the app

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def _inject(request: Request, call_next: Any) -> Response:
            provider = request.url.path.split("/")[1]
            mode = self.fail.get(provider)
            if mode == "slow":
                await asyncio.sleep(self.slow_s)
            elif mode == "500":
                return Response("upstream exploded", status_code=500, media_type="text/html")
            response: Response = await call_next(request)
            return response

        # Authorization endpoints: the person is "signed in" at once and sent back.
        for provider, path in (
            ("kakao", "/kakao/oauth/authorize"),
            ("naver", "/naver/oauth2.0/authorize"),
            ("google", "/google/o/oauth2/v2/auth"),
        ):
            app.add_api_route(path, self._authorize_handler(provider), methods=["GET"])

        for provider, path in (
            ("kakao", "/kakao/oauth/token"),
            ("naver", "/naver/oauth2.0/token"),
            ("google", "/google/token"),
        ):
            app.add_api_route(path, self._token_handler(provider), methods=["POST"])

        @app.get("/kakao/v2/user/me")
        async def kakao_me(request: Request) -> JSONResponse:
            person = self._bearer(request, "kakao")
            if person is None:
                return JSONResponse(
                    {"msg": "this access token does not exist", "code": -401}, status_code=401
                )
            return JSONResponse(
                {
                    "id": int(hashlib.sha256(person.subject.encode()).hexdigest()[:12], 16),
                    "connected_at": "2026-01-01T00:00:00Z",
                    "kakao_account": {"profile": {"nickname": person.name}},
                }
            )

        @app.get("/kakao/v1/user/access_token_info")
        async def kakao_token_info(request: Request) -> JSONResponse:
            person = self._bearer(request, "kakao")
            if person is None:
                return JSONResponse(
                    {"msg": "this access token does not exist", "code": -401}, status_code=401
                )
            token = request.headers["authorization"].removeprefix("Bearer ")
            return JSONResponse(
                {
                    "id": int(hashlib.sha256(person.subject.encode()).hexdigest()[:12], 16),
                    "expires_in": 7199,
                    "app_id": self.token_apps[token],
                }
            )

        @app.get("/naver/v1/nid/me")
        async def naver_me(request: Request) -> JSONResponse:
            person = self._bearer(request, "naver")
            if person is None:
                return JSONResponse(
                    {"resultcode": "024", "message": "Authentication failed"}, status_code=401
                )
            return JSONResponse(
                {
                    "resultcode": "00",
                    "message": "success",
                    "response": {"id": person.subject, "nickname": person.name},
                }
            )

        @app.get("/google/oauth2/v3/certs")
        async def certs() -> JSONResponse:
            return JSONResponse({"keys": [self.key.public_jwk()]})

        return app

    def _bearer(self, request: Request, provider: str) -> Person | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return None
        found = self.access_tokens.get(header.removeprefix("Bearer "))
        if found is None or found[0] != provider:
            return None
        return found[1]

    def _authorize_handler(self, provider: str) -> Any:
        async def authorize(request: Request) -> Response:
            q = request.query_params
            client_id = self.clients[provider][0]
            problems = [
                name
                for name, ok in (
                    ("client_id", q.get("client_id") == client_id),
                    ("response_type", q.get("response_type") == "code"),
                    ("redirect_uri", bool(q.get("redirect_uri"))),
                    ("state", bool(q.get("state"))),
                    ("code_challenge", bool(q.get("code_challenge"))),
                    ("code_challenge_method", q.get("code_challenge_method") == "S256"),
                )
                if not ok
            ]
            if problems:
                return JSONResponse({"error": "invalid_request", "fields": problems}, 400)
            code = secrets.token_urlsafe(24)
            self.codes[code] = Grant(
                provider,
                client_id,
                q["redirect_uri"],
                q["code_challenge"],
                self.person[provider],
                q.get("nonce"),
            )
            back = urlencode({"code": code, "state": q["state"]})
            return RedirectResponse(f"{q['redirect_uri']}?{back}", status_code=302)

        return authorize

    def _token_error(self, provider: str, error: str, description: str) -> JSONResponse:
        if provider == "naver":
            # Naver reports token errors with HTTP 200 and an error body.
            return JSONResponse({"error": error, "error_description": description})
        body = {"error": error, "error_description": description}
        if provider == "kakao":
            body["error_code"] = "KOE320"
        return JSONResponse(body, status_code=400)

    def _token_handler(self, provider: str) -> Any:
        async def token(request: Request) -> JSONResponse:
            form = await request.form()
            client_id, client_secret = self.clients[provider]
            if form.get("grant_type") != "authorization_code":
                return self._token_error(provider, "unsupported_grant_type", "grant_type")
            if form.get("client_id") != client_id or form.get("client_secret") != client_secret:
                return self._token_error(provider, "invalid_client", "bad client credentials")
            if provider == "naver" and not form.get("state"):
                return self._token_error(provider, "invalid_request", "state is required")
            grant = self.codes.pop(str(form.get("code", "")), None)
            if grant is None or grant.provider != provider:
                return self._token_error(provider, "invalid_grant", "unknown or used code")
            redirect_uri = form.get("redirect_uri")
            if redirect_uri is not None and redirect_uri != grant.redirect_uri:
                return self._token_error(provider, "invalid_grant", "redirect_uri mismatch")
            verifier = str(form.get("code_verifier", ""))
            digest = hashlib.sha256(verifier.encode("ascii")).digest()
            challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if not verifier or challenge != grant.challenge:
                return self._token_error(provider, "invalid_grant", "code_verifier mismatch")
            access = self.access_token_for(provider, grant.person)
            body: dict[str, Any] = {
                "access_token": access,
                "token_type": "bearer",
                "refresh_token": secrets.token_urlsafe(16),
                # Naver sends expires_in as a string; the others as a number.
                "expires_in": "3600" if provider == "naver" else 3599,
            }
            if provider == "google":
                body["id_token"] = self.id_token(grant.person, nonce=grant.nonce)
                body["scope"] = "openid profile"
            return JSONResponse(body)

        return token


class StandInServer:
    """Serves a :class:`StandIn` with uvicorn on a free loopback port, in a thread."""

    def __init__(self, standin: StandIn, port: int) -> None:
        self.standin = standin
        self.port = port
        standin.base_url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            standin.app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("stand-in provider server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
