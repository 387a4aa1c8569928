"""Who is asking: bearer JWTs verified against an OpenID Connect provider's keys (PyJWT), cached and refreshed.

A token verified once is remembered until its ``exp`` (``VerifiedTokens``): a client sends the same token
with every call, and a full check (parsing, RSA signature) costs ~100 µs of the service's one core.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from jwt import PyJWK, PyJWKSet

from chassis.errors import Unauthenticated
from chassis.logging import get_logger

__all__ = ["Identity", "JwksKeys", "TokenVerifier", "VerifiedTokens", "bearer_token"]

log = get_logger(__name__)

#: Asymmetric algorithms only: a token signed with a shared secret or ``alg: none`` is refused.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


@dataclass(frozen=True)
class Identity:
    """A verified caller: the token's subject and the roles it carries (``roles`` claim or ``scope``)."""

    subject: str
    roles: frozenset[str]

    def has_role(self, role: str) -> bool:
        return role in self.roles


def bearer_token(authorization: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` value; Unauthenticated when there is none."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("a bearer token is required (Authorization: Bearer <token>)")
    return token.strip()


def _fetch_json(url: str, timeout: float) -> dict[str, Any]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as reply:
        document: dict[str, Any] = json.loads(reply.read())
        return document


class JwksKeys:
    """The provider's signing keys: fetched on first use, cached, fetched again for an unknown ``kid``.

    Refetches are spaced at least ``min_refresh_seconds`` apart, so a flood of tokens with made-up
    key ids cannot turn into a flood of requests to the provider.
    """

    def __init__(
        self,
        *,
        url: str = "",
        file: Path | None = None,
        min_refresh_seconds: float = 30.0,
        timeout: float = 5.0,
        fetch: Callable[[str, float], dict[str, Any]] = _fetch_json,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not url and file is None:
            raise ValueError("a JWKS URL or file is required")
        self._url = url
        self._file = file
        self._min_refresh = min_refresh_seconds
        self._timeout = timeout
        self._fetch = fetch
        self._clock = clock
        self._keys: list[PyJWK] = []
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        #: Bumped whenever the keys are replaced: what was verified with the old set is verified again.
        self.generation = 0

    def _load(self) -> list[PyJWK]:
        if self._file is not None:
            document = json.loads(self._file.read_text())
        else:
            if self._url.endswith("/.well-known/openid-configuration"):  # discovery: find the jwks_uri once
                self._url = str(self._fetch(self._url, self._timeout)["jwks_uri"])
            document = self._fetch(self._url, self._timeout)
        return [key for key in PyJWKSet.from_dict(document).keys if key.public_key_use in ("sig", None)]

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            now = self._clock()
            if self._fetched_at is not None and (not force or now - self._fetched_at < self._min_refresh):
                return
            try:
                self._keys = await asyncio.to_thread(self._load)
                self.generation += 1
            except Exception as error:
                log.warning("cannot fetch the signing keys", source=self._url or str(self._file), error=repr(error))
                if self._fetched_at is None:
                    raise Unauthenticated("the identity provider's signing keys are not available") from error
            self._fetched_at = now

    async def candidates(self, kid: str | None) -> Sequence[PyJWK]:
        """The keys that may have signed a token with this ``kid`` (every key when the token names none)."""
        await self._refresh(force=False)
        matching = [k for k in self._keys if kid is None or k.key_id == kid]
        if not matching and kid is not None:
            await self._refresh(force=True)  # the provider may have rotated its keys
            matching = [k for k in self._keys if k.key_id == kid]
        return matching


@dataclass(frozen=True)
class _Verified:
    identity: Identity
    verified_at: float
    expires_at: float
    generation: int


class VerifiedTokens:
    """Tokens that passed every check, by their exact text, with their Identity, until their ``exp``.

    Only ``TokenVerifier`` stores here, and only after a full verification succeeded. An entry
    answers only while ``verified_at <= now < exp`` on the wall clock: never at or after ``exp``
    (not even within the leeway a full check allows: that is checked again in full), and never
    if the clock went back to before the check (then ``nbf``/``iat`` would not be proven), and only
    for the key set it was verified with (``generation``). At most ``max_entries``: the oldest goes first.
    """

    def __init__(self, max_entries: int = 4096, clock: Callable[[], float] = time.time) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be at least 0")
        self._max = max_entries
        self._clock = clock
        self._entries: dict[str, _Verified] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str, generation: int) -> Identity | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        now = self._clock()
        if entry.generation == generation and entry.verified_at <= now < entry.expires_at:
            return entry.identity
        if now >= entry.expires_at or entry.generation != generation:
            del self._entries[token]
        return None

    def put(self, token: str, identity: Identity, expires_at: float, generation: int) -> None:
        """Remember ``token``, verified in full just now, until ``expires_at`` (its ``exp``)."""
        now = self._clock()
        if self._max == 0 or not now < expires_at:
            return
        self._entries.pop(token, None)
        while len(self._entries) >= self._max:
            del self._entries[next(iter(self._entries))]
        self._entries[token] = _Verified(identity, now, expires_at, generation)


class TokenVerifier:
    """Verifies signature, issuer, audience, expiry and not-before of a bearer JWT; returns the Identity.

    A token that passed is remembered until its ``exp`` (``cache``, see ``VerifiedTokens``), so a client
    that sends the same token with every call pays for the full check once.
    """

    def __init__(
        self,
        keys: JwksKeys,
        *,
        issuer: str,
        audience: str,
        leeway_seconds: float = 30.0,
        roles_claim: str = "roles",
        cache: VerifiedTokens | None = None,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds
        self._roles_claim = roles_claim
        self._cache = VerifiedTokens() if cache is None else cache

    async def verify(self, token: str) -> Identity:
        known = self._cache.get(token, self._keys.generation)
        if known is not None:
            return known
        identity, expires_at, generation = await self._verify(token)
        self._cache.put(token, identity, expires_at, generation)
        return identity

    async def _verify(self, token: str) -> tuple[Identity, float, int]:
        """The full check: the Identity, the token's ``exp`` and the generation of the keys that verified it."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"the token is not a JWT: {error}") from error
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise Unauthenticated(f"the token's algorithm {algorithm!r} is not accepted")
        keys = await self._keys.candidates(header.get("kid"))
        generation = self._keys.generation  # of these keys: nothing below awaits
        if not keys:
            raise Unauthenticated("the token was not signed by a key of the identity provider")
        last: jwt.PyJWTError | None = None
        for key in keys:
            try:
                claims = jwt.decode(
                    token,
                    key=key,
                    algorithms=[algorithm],
                    audience=self._audience,
                    issuer=self._issuer,
                    leeway=self._leeway,
                    options={"require": ["exp", "iss", "aud", "sub"]},
                )
            except jwt.InvalidSignatureError as error:
                last = error
                continue
            except jwt.PyJWTError as error:
                raise Unauthenticated(f"the token is not valid: {error}") from error
            if not str(claims["sub"]).strip():
                raise Unauthenticated("the token names no subject")
            return Identity(str(claims["sub"]), self._roles(claims)), float(claims["exp"]), generation
        raise Unauthenticated(f"the token is not valid: {last}")

    def _roles(self, claims: dict[str, Any]) -> frozenset[str]:
        roles = claims.get(self._roles_claim, [])
        found = {str(r) for r in roles} if isinstance(roles, list) else set(str(roles).split())
        scope = claims.get("scope", "")
        if isinstance(scope, str):
            found |= set(scope.split())
        return frozenset(found)
