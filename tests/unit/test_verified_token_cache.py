"""The verified-token cache: a repeated token is checked in full once, and the cache never accepts what a full
check would refuse: nothing it did not verify, nothing at or after ``exp``, nothing under replaced keys."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any

import jwt
import jwt.api_jwt
import pytest

from chassis.auth import Identity, JwksKeys, TokenVerifier, VerifiedTokens
from chassis.errors import Unauthenticated
from tests.unit.test_token_verifier import (
    ATTACKS,
    AUDIENCE,
    ISSUER,
    PROVIDER_KEY,
    STRANGER_KEY,
    Provider,
    jwks,
)

T0 = float(int(time.time()))
LEEWAY = 5.0


class Wall:
    """One wall clock for the cache and for PyJWT's own exp/nbf/iat checks."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> Wall:
    clock = Wall()

    class FrozenDatetime(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> FrozenDatetime:
            return cls.fromtimestamp(clock.now, tz)

    monkeypatch.setattr(jwt.api_jwt, "datetime", FrozenDatetime)
    return clock


@pytest.fixture
def full_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token that went through PyJWT's full decode (signature and claims)."""
    seen: list[str] = []
    decode: Callable[..., Any] = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    return seen


def sign(key: Any = PROVIDER_KEY, kid: str = "k1", **claims: Any) -> str:
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": int(T0), "exp": int(T0) + 300, **claims}
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid})


class Setup:
    def __init__(self, wall: Wall, max_entries: int = 4096) -> None:
        self.provider = Provider(jwks(("k1", PROVIDER_KEY)))
        self.keys_clock = [0.0]
        self.keys = JwksKeys(url="https://id.example.com/jwks", fetch=self.provider, clock=lambda: self.keys_clock[0])
        self.cache = VerifiedTokens(max_entries, clock=wall)
        self.verifier = TokenVerifier(
            self.keys, issuer=ISSUER, audience=AUDIENCE, leeway_seconds=LEEWAY, cache=self.cache
        )


async def test_a_repeated_token_is_checked_in_full_once(wall: Wall, full_checks: list[str]) -> None:
    setup = Setup(wall)
    token = sign(roles=["orders:admin"])
    first = await setup.verifier.verify(token)
    for _ in range(3):
        assert await setup.verifier.verify(token) == first == Identity("alice", frozenset({"orders:admin"}))
    assert full_checks == [token]
    other = sign(sub="bob")
    assert (await setup.verifier.verify(other)).subject == "bob"  # another token is another entry
    assert full_checks == [token, other]


async def test_the_cache_never_answers_at_or_after_exp(wall: Wall, full_checks: list[str]) -> None:
    setup = Setup(wall)
    token = sign()
    exp = T0 + 300
    await setup.verifier.verify(token)
    wall.now = exp - 0.001
    await setup.verifier.verify(token)
    assert len(full_checks) == 1  # answered by the cache until the last moment before exp
    wall.now = exp
    await setup.verifier.verify(token)  # the full check still accepts it, within its leeway ...
    assert len(full_checks) == 2
    wall.now = exp + LEEWAY - 1
    await setup.verifier.verify(token)
    assert len(full_checks) == 3  # ... and each time again: a token past exp is never remembered
    assert len(setup.cache) == 0
    wall.now = exp + LEEWAY + 1
    with pytest.raises(Unauthenticated, match="expired"):
        await setup.verifier.verify(token)


async def test_a_token_accepted_only_within_the_leeway_is_not_remembered(wall: Wall, full_checks: list[str]) -> None:
    setup = Setup(wall)
    token = sign(exp=int(T0) - 2)
    for _ in range(2):
        assert (await setup.verifier.verify(token)).subject == "alice"
    assert full_checks == [token, token]
    assert len(setup.cache) == 0


@pytest.mark.parametrize("attack", ATTACKS, ids=list(ATTACKS))
async def test_a_refused_token_is_never_remembered(wall: Wall, attack: str) -> None:
    setup = Setup(wall)
    wall.now = time.time()  # the attack tokens are made at the real time
    await setup.verifier.verify(sign(exp=int(wall.now) + 300))  # a good token is remembered beside it
    token = ATTACKS[attack]()
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            await setup.verifier.verify(token)
    assert len(setup.cache) == 1


async def test_a_tampered_copy_of_a_remembered_token_is_refused(wall: Wall) -> None:
    setup = Setup(wall)
    token = sign()
    await setup.verifier.verify(token)
    header, payload, signature = token.split(".")
    forged = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": int(T0) + 300}, STRANGER_KEY, "RS256")
    for variant in (f"{header}.{forged.split('.')[1]}.{signature}", token + "x", f"{header}.{payload}.", " " + token):
        with pytest.raises(Unauthenticated):
            await setup.verifier.verify(variant)


async def test_after_the_clock_went_back_before_the_check_nbf_is_checked_again(wall: Wall) -> None:
    setup = Setup(wall)
    token = sign(nbf=int(T0) + 100, iat=int(T0) + 100)
    with pytest.raises(Unauthenticated):
        await setup.verifier.verify(token)  # not yet valid
    wall.now = T0 + 100
    await setup.verifier.verify(token)
    assert len(setup.cache) == 1
    wall.now = T0  # the wall clock was set back
    with pytest.raises(Unauthenticated):
        await setup.verifier.verify(token)


async def test_a_token_whose_key_was_withdrawn_is_refused_once_the_keys_are_fetched_again(wall: Wall) -> None:
    setup = Setup(wall)
    token = sign()
    await setup.verifier.verify(token)
    setup.provider.document = jwks(("k2", STRANGER_KEY))  # the provider replaced its key
    setup.keys_clock[0] = 60.0
    assert (await setup.verifier.verify(sign(key=STRANGER_KEY, kid="k2"))).subject == "alice"
    assert setup.provider.fetches == 2
    with pytest.raises(Unauthenticated):
        await setup.verifier.verify(token)


def test_the_cache_is_bounded_and_drops_the_oldest_first(wall: Wall) -> None:
    cache = VerifiedTokens(max_entries=2, clock=wall)
    alice, bob, carol = (Identity(name, frozenset()) for name in ("alice", "bob", "carol"))
    cache.put("a", alice, T0 + 60, 1)
    cache.put("b", bob, T0 + 60, 1)
    cache.put("c", carol, T0 + 60, 1)
    assert len(cache) == 2
    assert (cache.get("a", 1), cache.get("b", 1), cache.get("c", 1)) == (None, bob, carol)
    assert cache.get("b", 2) is None  # another key set
    assert len(cache) == 1
    cache.put("d", alice, T0, 1)  # already expired: never stored
    assert cache.get("d", 1) is None
    off = VerifiedTokens(max_entries=0, clock=wall)
    off.put("a", alice, T0 + 60, 1)
    assert len(off) == 0
    with pytest.raises(ValueError, match="max_entries"):
        VerifiedTokens(max_entries=-1)
