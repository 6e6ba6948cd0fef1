"""Our access tokens: HS256 JWTs signed with python-jose.

The verifier accepts exactly one algorithm (no ``alg: none``, no RS/HS confusion) and checks
issuer, audience and expiry, each of which the token must carry. ``kid`` names the key a token
was signed with; only tokens of the configured secret verify, so changing the secret
invalidates every access token at once. They live minutes, and a signed-in client gets a new
one with its refresh token, which is opaque and does not depend on the secret.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass

from jose import ExpiredSignatureError, JWTError, jwt

from server.errors import AuthError, TokenExpired

ALGORITHM = "HS256"


def key_id(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Claims:
    user_id: str
    expires_at: float
    token_id: str
    guest: bool


class TokenService:
    def __init__(
        self,
        secret: str,
        *,
        issuer: str,
        audience: str,
        access_ttl_s: int,
    ) -> None:
        self._secret = secret
        self._kid = key_id(secret)
        self.issuer = issuer
        self.audience = audience
        self.access_ttl_s = access_ttl_s

    def issue_access(self, user_id: str, *, guest: bool, ttl_s: int | None = None) -> str:
        now = int(time.time())
        claims = {
            "sub": user_id,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + (ttl_s if ttl_s is not None else self.access_ttl_s),
            "jti": uuid.uuid4().hex,
            "typ": "access",
            "guest": guest,
        }
        token: str = jwt.encode(
            claims, self._secret, algorithm=ALGORITHM, headers={"kid": self._kid}
        )
        return token

    def verify_access(self, token: str) -> Claims:
        try:
            header = jwt.get_unverified_header(token)
        except JWTError as exc:
            raise AuthError("the token is not a JWT") from exc
        if header.get("alg") != ALGORITHM:
            raise AuthError("the token's algorithm is not accepted")
        if header.get("kid") != self._kid:
            raise AuthError("the token was signed with an unknown key")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                # python-jose checks the audience and issuer only when the token names one:
                # a token without ``aud`` (minted for no audience, or for another service
                # that shares the key) would pass. Require both.
                options={
                    "require_aud": True,
                    "require_iss": True,
                    "require_exp": True,
                    "require_sub": True,
                    "require_iat": True,
                },
            )
        except ExpiredSignatureError as exc:
            raise TokenExpired("the token has expired; get a new one") from exc
        except JWTError as exc:
            raise AuthError(f"the token is not valid: {exc}") from exc
        if claims.get("typ") != "access":
            raise AuthError("not an access token")
        return Claims(
            user_id=str(claims["sub"]),
            expires_at=float(claims["exp"]),
            token_id=str(claims.get("jti", "")),
            guest=bool(claims.get("guest", False)),
        )
