"""Signing in at the development identity provider without a browser (its login form takes any subject)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence

__all__ = ["DEV_CLIENT_ID", "DEV_CLIENT_SECRET", "DEV_ISSUER", "dev_token"]

DEV_ISSUER = "http://127.0.0.1:9400"
DEV_CLIENT_ID = "order-saga"
#: The development provider authenticates clients at its token endpoint even with PKCE; it takes any secret.
DEV_CLIENT_SECRET = "dev-only-not-a-secret"
_REDIRECT_URI = "http://127.0.0.1/callback"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _open(request: urllib.request.Request, timeout: float, *, follow: bool = True) -> tuple[int, str, bytes]:
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if not follow:
        handlers.append(_NoRedirect())
    try:
        with urllib.request.build_opener(*handlers).open(request, timeout=timeout) as reply:
            return reply.status, reply.headers.get("Location", ""), reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Location", ""), error.read()


def dev_token(
    customer: str,
    *,
    issuer: str = DEV_ISSUER,
    client_id: str = DEV_CLIENT_ID,
    roles: Sequence[str] = (),
    timeout: float = 10.0,
) -> str:
    """A signed bearer token (the provider's ID token, a JWT whose ``sub`` is ``customer``).

    Runs the authorization-code flow with PKCE against the development provider
    (oidc-provider-mock), whose login form signs in any subject. ``roles`` are set as the
    subject's ``roles`` claim first (e.g. ``orders:admin``). A real provider needs a real login:
    use its own tooling and pass the token with ``--token`` or ``ORDERS_TOKEN``.
    """
    base = issuer.rstrip("/")
    if roles:
        claims = json.dumps({"roles": list(roles)}).encode()
        user = urllib.parse.quote(customer, safe="")
        put = urllib.request.Request(
            f"{base}/users/{user}", data=claims, method="PUT", headers={"Content-Type": "application/json"}
        )
        _open(put, timeout)
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(16)
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": _REDIRECT_URI,
            "scope": "openid",
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    login = urllib.request.Request(
        f"{base}/oauth2/authorize?{query}", data=urllib.parse.urlencode({"sub": customer}).encode()
    )
    status, location, body = _open(login, timeout, follow=False)
    params = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)
    if status != 302 or params.get("state") != [state] or "code" not in params:
        raise RuntimeError(f"the provider at {base} did not sign {customer!r} in (HTTP {status}): {body[:200]!r}")
    exchange = urllib.request.Request(
        f"{base}/oauth2/token",
        data=urllib.parse.urlencode(
            {
                "grant_type": "authorization_code",
                "code": params["code"][0],
                "redirect_uri": _REDIRECT_URI,
                "client_id": client_id,
                "client_secret": DEV_CLIENT_SECRET,
                "code_verifier": verifier,
            }
        ).encode(),
    )
    status, _, body = _open(exchange, timeout)
    if status != 200:
        raise RuntimeError(f"the provider at {base} refused the code (HTTP {status}): {body[:200]!r}")
    token = json.loads(body).get("id_token")
    if not isinstance(token, str):
        raise RuntimeError(f"the provider at {base} issued no ID token")
    return token
