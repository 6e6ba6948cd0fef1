"""Google ID-token checks at the function level: the key set we accept and what we refuse.

The REST-level attacks are in ``test_attacks.py``; these pin what the key-set parsing and the
claim checks do with input the stand-in's happy path never produces.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from server.auth.errors import ProviderRefused
from server.auth.providers import JwksCache, KeySet, verify_google_id_token
from tests.accounts.conftest import accounts_for
from tests.accounts.standin import GOOGLE_ISSUER, Person, SigningKey, StandIn


def _cache(standin: StandIn) -> JwksCache:
    return JwksCache(f"{standin.base_url}/google/oauth2/v3/certs", max_age_s=60, timeout_s=2.0)


def test_key_set_keeps_only_keys_that_can_check_rs256() -> None:
    rsa_key = SigningKey.generate("r1").public_jwk()
    symmetric = {"kty": "oct", "kid": "h1", "k": "c2VjcmV0"}
    elliptic = {"kty": "EC", "kid": "e1", "crv": "P-256", "x": "AA", "y": "AA"}
    keys = KeySet.from_jwks({"keys": [symmetric, rsa_key, elliptic]})
    assert [kid for kid, _ in keys.keys] == ["r1"]
    assert keys.has("r1") and not keys.has("h1")
    assert keys.candidates("h1") == [] and len(keys.candidates(None)) == 1


@pytest.mark.parametrize(
    "document",
    [{"not": "keys"}, {"keys": "x"}, {"keys": ["x"]}, {"keys": [{"kty": "RSA", "n": "x"}]}, []],
)
def test_key_set_refuses_what_is_not_one(document: Any) -> None:
    with pytest.raises(ValueError):
        KeySet.from_jwks(document)


async def test_token_naming_a_key_we_do_not_have_is_refused(standin: StandIn) -> None:
    config = accounts_for(standin).providers["google"]
    token = standin.id_token(Person("g-1", "x"), key=SigningKey.generate("not-published"))
    with pytest.raises(ProviderRefused, match="signature"):
        await verify_google_id_token(config, _cache(standin), token)


async def test_claims_are_named_not_quoted(standin: StandIn) -> None:
    config = accounts_for(standin).providers["google"]
    now = int(time.time())
    claims: dict[str, Any] = {"iss": GOOGLE_ISSUER, "aud": config.client_id, "exp": now + 60}
    with pytest.raises(ProviderRefused, match="'sub'"):
        await verify_google_id_token(config, _cache(standin), standin.key.sign(claims))
    token = standin.id_token(Person("g-1", "x"), nonce="n-1")
    with pytest.raises(ProviderRefused, match="'nonce'") as refused:
        await verify_google_id_token(config, _cache(standin), token, nonce="n-2")
    assert "n-1" not in str(refused.value)


async def test_audience_may_be_a_list_and_extra_audiences_are_opt_in(standin: StandIn) -> None:
    config = (
        accounts_for(standin)
        .providers["google"]
        .model_copy(update={"extra_audiences": ("ios-client",)})
    )
    now = int(time.time())
    listed = standin.key.sign(
        {
            "iss": GOOGLE_ISSUER,
            "aud": ["another-app", config.client_id],
            "sub": "g-1",
            "name": "one",
            "exp": now + 60,
        }
    )
    profile = await verify_google_id_token(config, _cache(standin), listed)
    assert (profile.subject, profile.display_name) == ("g-1", "one")
    ios = standin.id_token(Person("g-2", "two"), aud="ios-client")
    with pytest.raises(ProviderRefused, match="'aud'"):
        await verify_google_id_token(config, _cache(standin), ios)
    native = await verify_google_id_token(config, _cache(standin), ios, extra_audiences=True)
    assert native.subject == "g-2"
