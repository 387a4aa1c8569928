"""Who is asking: bearer JWTs verified against an OpenID Connect provider's keys (PyJWT), cached and refreshed."""

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

__all__ = ["Identity", "JwksKeys", "TokenVerifier", "bearer_token"]

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


class TokenVerifier:
    """Verifies signature, issuer, audience, expiry and not-before of a bearer JWT; returns the Identity."""

    def __init__(
        self,
        keys: JwksKeys,
        *,
        issuer: str,
        audience: str,
        leeway_seconds: float = 30.0,
        roles_claim: str = "roles",
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds
        self._roles_claim = roles_claim

    async def verify(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"the token is not a JWT: {error}") from error
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise Unauthenticated(f"the token's algorithm {algorithm!r} is not accepted")
        keys = await self._keys.candidates(header.get("kid"))
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
            return Identity(str(claims["sub"]), self._roles(claims))
        raise Unauthenticated(f"the token is not valid: {last}")

    def _roles(self, claims: dict[str, Any]) -> frozenset[str]:
        roles = claims.get(self._roles_claim, [])
        found = {str(r) for r in roles} if isinstance(roles, list) else set(str(roles).split())
        scope = claims.get("scope", "")
        if isinstance(scope, str):
            found |= set(scope.split())
        return frozenset(found)
