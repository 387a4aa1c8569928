"""The token verifier refuses every forged, stale or misdirected JWT and accepts the provider's good one."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from chassis.auth import Identity, JwksKeys, TokenVerifier, bearer_token
from chassis.errors import Unauthenticated

ISSUER = "https://id.example.com"
AUDIENCE = "order-saga"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


PROVIDER_KEY = _key()
STRANGER_KEY = _key()


def jwks(*keys: tuple[str, rsa.RSAPrivateKey]) -> dict[str, Any]:
    return {"keys": [{**json.loads(RSAAlgorithm.to_jwk(k.public_key())), "kid": kid, "use": "sig"} for kid, k in keys]}


def sign(claims: dict[str, Any], key: rsa.RSAPrivateKey = PROVIDER_KEY, kid: str | None = "k1", **extra: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300, **claims}
    headers = {"kid": kid} if kid else {}
    return jwt.encode(body, key, algorithm="RS256", headers=headers, **extra)


class Provider:
    """A JWKS endpoint stand-in that counts how often it is asked."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.fetches = 0

    def __call__(self, url: str, timeout: float) -> dict[str, Any]:
        self.fetches += 1
        return self.document


def verifier(provider: Provider, clock: list[float] | None = None) -> TokenVerifier:
    now = clock or [0.0]
    keys = JwksKeys(url="https://id.example.com/jwks", fetch=provider, clock=lambda: now[0])
    return TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE, leeway_seconds=5)


@pytest.fixture
def provider() -> Provider:
    return Provider(jwks(("k1", PROVIDER_KEY)))


async def test_a_good_token_gives_its_subject_and_roles(provider: Provider) -> None:
    token = sign({"roles": ["orders:admin"], "scope": "openid orders:read"})
    identity = await verifier(provider).verify(token)
    assert identity == Identity("alice", frozenset({"orders:admin", "openid", "orders:read"}))


async def test_a_token_without_a_kid_is_tried_against_every_provider_key(provider: Provider) -> None:
    assert (await verifier(provider).verify(sign({}, kid=None))).subject == "alice"


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _tampered() -> str:
    header, _, signature = sign({}).split(".")
    now = int(time.time())
    payload = _b64({"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": now + 300})
    return f"{header}.{payload}.{signature}"


def _cut() -> str:
    token = sign({})
    return token[: -len(token.split(".")[2]) // 2]


def _alg_none() -> str:
    now = int(time.time())
    return (
        f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64({'iss': ISSUER, 'aud': AUDIENCE, 'sub': 'x', 'exp': now + 60})}."
    )


ATTACKS: dict[str, Callable[[], str]] = {
    "expired": lambda: sign({"exp": int(time.time()) - 60}),
    "not yet valid": lambda: sign({"nbf": int(time.time()) + 600}),
    "wrong issuer": lambda: sign({"iss": "https://evil.example.com"}),
    "wrong audience": lambda: sign({"aud": "someone-else"}),
    "no subject": lambda: sign({"sub": ""}),
    "no expiry": lambda: jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "a"}, PROVIDER_KEY, "RS256", {"kid": "k1"}),
    "alg none": _alg_none,
    "HS256 with the public key as secret": lambda: jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "a", "exp": int(time.time()) + 60}, "k1-public-key-" * 4, "HS256"
    ),
    "tampered payload": _tampered,
    "cut signature": _cut,
    "unknown signing key, known kid": lambda: sign({}, key=STRANGER_KEY, kid="k1"),
    "unknown signing key, no kid": lambda: sign({}, key=STRANGER_KEY, kid=None),
    "not a JWT": lambda: "hello",
}


@pytest.mark.parametrize("attack", ATTACKS, ids=list(ATTACKS))
async def test_an_attack_token_is_refused(provider: Provider, attack: str) -> None:
    with pytest.raises(Unauthenticated):
        await verifier(provider).verify(ATTACKS[attack]())


async def test_an_unknown_kid_refreshes_the_keys_once_in_a_while_not_on_every_token(provider: Provider) -> None:
    clock = [0.0]
    check = verifier(provider, clock)
    await check.verify(sign({}))
    provider.document = jwks(("k1", PROVIDER_KEY), ("k2", STRANGER_KEY))  # the provider rotated in a new key
    clock[0] = 60.0
    assert (await check.verify(sign({}, key=STRANGER_KEY, kid="k2"))).subject == "alice"
    assert provider.fetches == 2
    for _ in range(5):  # made-up key ids do not hammer the provider
        with pytest.raises(Unauthenticated):
            await check.verify(sign({}, key=STRANGER_KEY, kid="made-up"))
    assert provider.fetches == 2


@pytest.mark.parametrize("value", ["", "Bearer", "Bearer   ", "Basic abc", "token-without-scheme"])
def test_anything_but_a_bearer_token_is_unauthenticated(value: str) -> None:
    with pytest.raises(Unauthenticated):
        bearer_token(value)
