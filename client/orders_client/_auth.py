"""Who the client calls as: a bearer token (a string, ``$ORDERS_TOKEN``, or a callable asked before every call)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import inspect
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

__all__ = ["AUTHORIZATION_HEADER", "TOKEN_ENV", "Bearer", "Token", "TokenSource", "in_worker_thread", "token_claims"]

TOKEN_ENV = "ORDERS_TOKEN"
AUTHORIZATION_HEADER = "authorization"

#: A callable that returns a token now: plain (``lambda: cache.token()``) or ``async``.
TokenSource: TypeAlias = Callable[[], str | Awaitable[str]]
#: A fixed token, or a callable that supplies one for every call.
Token: TypeAlias = str | TokenSource


def _bare(token: str) -> str:
    """The token alone: surrounding blanks and a leading ``Bearer `` (copied along with it) dropped."""
    token = token.strip()
    scheme, _, rest = token.partition(" ")
    return rest.strip() if scheme.lower() == "bearer" and rest.strip() else token


class Bearer:
    """The ``authorization: Bearer …`` metadata of each call, from a fixed token or a token source.

    ``token=None`` reads ``$ORDERS_TOKEN`` once (no token if it is unset or empty); ``""`` means no
    token at all. A callable is asked before every attempt of every call (retries and reopened
    watches included), so it can hand out a fresh token when the last one expires; what it returns
    is awaited if it is awaitable.
    """

    def __init__(self, token: Token | None) -> None:
        if token is None:
            token = os.environ.get(TOKEN_ENV, "")
        if not isinstance(token, str) and not callable(token):
            raise TypeError(f"token must be a str or a callable returning one, not {type(token).__name__}")
        self._token = token

    async def token(self) -> str:
        """The token for the next call ("" for none)."""
        source = self._token
        if isinstance(source, str):
            return _bare(source)
        value: Any = source()
        if inspect.isawaitable(value):
            value = await value
        if not isinstance(value, str):
            raise TypeError(f"the token source returned {type(value).__name__}, not a str")
        return _bare(value)

    async def metadata(self) -> tuple[tuple[str, str], ...]:
        """``(("authorization", "Bearer <token>"),)``, or nothing when there is no token."""
        token = await self.token()
        return ((AUTHORIZATION_HEADER, f"Bearer {token}"),) if token else ()


def in_worker_thread(source: TokenSource) -> TokenSource:
    """``source`` called in a worker thread (its result awaited on the loop if it is awaitable).

    The sync client's calls of all its threads share one event loop: a token source that blocks
    (e.g. signs in over HTTP) must not hold up the others while it runs.
    """

    async def offloaded() -> str:
        value: Any = await asyncio.to_thread(source)
        if inspect.isawaitable(value):
            value = await value
        token: str = value  # Bearer.token checks that it is one
        return token

    return offloaded


def token_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, read WITHOUT checking its signature: only to say whose it is and when it expires.

    ``{}`` when ``token`` is not a JWT. The service verifies every token itself.
    """
    parts = _bare(token).split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (binascii.Error, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}
