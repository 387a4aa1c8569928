"""`orders token` and `orders login` against the real development identity provider (oidc-provider-mock)."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from devstack.binaries import binary
from devstack.identity import AUDIENCE, OidcProvider


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    running = OidcProvider(Path(tmp_path_factory.mktemp("identity")))
    try:
        yield running.start()
    finally:
        running.stop()


def orders(*args: str, config: Path, issuer: str = "") -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("ORDERS_TOKEN", "OIDC_ISSUER")}
    env |= {"XDG_CONFIG_HOME": str(config), "NO_COLOR": "1"} | ({"OIDC_ISSUER": issuer} if issuer else {})
    return subprocess.run([binary("orders"), *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def verified(token: str, provider: OidcProvider) -> dict[str, object]:
    """The token's claims once its signature, issuer, audience and expiry are checked against the provider's keys."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(provider.jwks_url, timeout=5) as reply:
        (key,) = jwt.PyJWKSet.from_json(reply.read().decode()).keys  # the mock has one key, and names no kid
    claims: dict[str, object] = jwt.decode(
        token, key=key, algorithms=["RS256"], audience=AUDIENCE, issuer=provider.issuer
    )
    return claims


def test_token_prints_only_a_signed_jwt_naming_the_customer(provider: OidcProvider, tmp_path: Path) -> None:
    printed = orders("token", "alice", "--issuer", provider.issuer, config=tmp_path)
    assert (printed.returncode, printed.stderr) == (0, "")
    assert printed.stdout.endswith("\n")
    assert printed.stdout.count("\n") == 1
    token = printed.stdout.strip()
    assert token.count(".") == 2
    claims = verified(token, provider)
    assert claims["sub"] == "alice"
    assert "roles" not in claims
    assert not (tmp_path / "orders").exists()  # printed, not kept


def test_token_with_roles_from_the_issuer_in_the_environment(provider: OidcProvider, tmp_path: Path) -> None:
    printed = orders(
        "token", "ops", "--role", "orders:admin", "--role", "audit", config=tmp_path, issuer=provider.issuer
    )
    assert printed.returncode == 0, printed.stderr
    claims = verified(printed.stdout.strip(), provider)
    assert (claims["sub"], claims["roles"]) == ("ops", ["orders:admin", "audit"])


def test_login_keeps_the_token_for_its_owner_alone(provider: OidcProvider, tmp_path: Path) -> None:
    login = orders("--json", "login", "bob", "--issuer", provider.issuer, config=tmp_path)
    assert (login.returncode, login.stderr) == (0, "")
    said = json.loads(login.stdout)
    kept = tmp_path / "orders" / "token"
    assert (said["customer"], said["tokenFile"]) == ("bob", str(kept))
    assert said["expireTime"].endswith("+00:00")
    assert kept.stat().st_mode & 0o777 == 0o600
    assert kept.parent.stat().st_mode & 0o777 == 0o700
    assert verified(kept.read_text().strip(), provider)["sub"] == "bob"


def test_an_issuer_that_is_no_identity_provider_exits_77(provider: OidcProvider, tmp_path: Path) -> None:
    wrong = orders("token", "alice", "--issuer", f"{provider.issuer}/nothing-here", config=tmp_path)
    assert (wrong.returncode, wrong.stdout) == (77, "")
    assert wrong.stderr.startswith("error: the identity provider did not sign 'alice' in: ")
    assert "--issuer (or $OIDC_ISSUER) must be the development identity provider" in wrong.stderr
