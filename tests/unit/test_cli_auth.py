"""The ``orders`` command's token (--token, $ORDERS_TOKEN, the kept login) and what it says when none is accepted."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from orders_client._tokenstore import load_token, remove_token, save_token, token_file
from orders_client.cli import EXIT_CODES
from tests.unit.test_cli_output import orders
from tests.unit.test_client_auth import jwt_with
from tests.unit.test_client_calls import TOKEN, FakeOrders, free_port, paid, serving

HINT_LOGIN = "sign in with `orders login alice` (your customer id; the stack must be running: `make up`)"


async def test_no_token_exits_77_saying_how_to_sign_in() -> None:
    fake = FakeOrders(paid("o-1"))
    async with serving(fake) as target:
        code, out, err = await orders("--target", target, "get", "o-1", token=None)
        json_code, _, json_err = await orders("--json", "--target", target, "list", token=None)
    assert (code, out) == (77, "")
    assert err.splitlines() == [
        "error: not signed in: the service needs a token (none given with --token, $ORDERS_TOKEN or `orders login`)",
        f"  {HINT_LOGIN}, or pass --token TOKEN or set $ORDERS_TOKEN",
    ]
    assert json_code == 77
    error = json.loads(json_err)["error"]
    assert (error["type"], error["code"]) == ("NotAuthenticated", "UNAUTHENTICATED")
    assert "orders login alice" in error["hint"]
    assert fake.calls == {}


async def test_an_expired_kept_login_names_its_customer_and_when_it_expired() -> None:
    expired = jwt_with({"sub": "carol", "exp": 1_700_000_000})
    path = save_token(expired)
    async with serving(FakeOrders(paid("o-1"))) as target:
        code, _, err = await orders("--target", target, "get", "o-1", token=None)
    assert code == 77
    assert err.splitlines() == [
        f"error: the service refused the token for 'carol' from the login kept in {path} "
        "(it expired at 2023-11-14T22:13:20+00:00): the token is not valid: Signature has expired",
        "  sign in again with `orders login carol` (the stack restarted? its identity provider got new keys)",
    ]


async def test_a_refused_token_from_the_environment_suggests_a_fresh_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERS_TOKEN", jwt_with({"sub": "dave", "exp": time.time() + 600}))
    async with serving(FakeOrders(paid("o-1"))) as target:
        code, _, err = await orders("--target", target, "list", token=None)
    assert code == 77
    first, hint = err.splitlines()
    assert first.startswith("error: the service refused the token for 'dave' from $ORDERS_TOKEN: ")
    assert "expired at" not in first  # by its own clock it has not: the service said why
    assert hint == "  get a fresh token with `orders token dave`, or sign in with `orders login dave`"


async def test_token_option_then_environment_then_kept_login(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeOrders(paid("o-1"))
    fake.tokens |= {"by-option", "by-env", "kept"}
    save_token("kept")
    async with serving(fake) as target:
        assert (await orders("--target", target, "get", "o-1", token=None))[0] == 0
        monkeypatch.setenv("ORDERS_TOKEN", "by-env")
        assert (await orders("--target", target, "get", "o-1", token=None))[0] == 0
        assert (await orders("get", "o-1", "--target", target, "--token", "by-option", token=None))[0] == 0
    assert [token for _, token in fake.seen] == ["kept", "by-env", "by-option"]


async def test_place_needs_no_customer_the_token_names_it() -> None:
    fake = FakeOrders(paid("o-1"))
    async with serving(fake) as target:
        code, _, err = await orders("--json", "--target", target, "place", "--item", "A:1:1")
        assert (code, err) == (0, "")
        code, _, _ = await orders("--json", "--target", target, "place", "--customer", "alice", "--item", "A:1:1")
        assert code == 0
    assert [request.order.customer_id for request in fake.created] == ["", "alice"]
    assert [token for _, token in fake.seen] == [TOKEN, TOKEN]


async def test_token_when_the_identity_provider_is_down_exits_69_naming_it() -> None:
    issuer = f"http://127.0.0.1:{free_port()}"
    code, out, err = await orders("token", "alice", "--issuer", issuer, token=None)
    assert (code, out) == (69, "")
    lines = err.splitlines()
    assert lines[0].startswith(f"error: cannot reach the identity provider at {issuer} (")
    assert lines[1] == (
        "  is the stack running? Start it with `make up`, or point --issuer (or $OIDC_ISSUER) at the identity provider"
    )


async def test_logout_forgets_the_kept_token_and_says_when_there_was_none() -> None:
    path = save_token("kept")
    code, out, _ = await orders("logout", token=None)
    assert (code, out.strip()) == (0, f"signed out: removed {path}")
    assert not path.exists()
    code, out, _ = await orders("logout", token=None)
    assert (code, out.strip()) == (0, "not signed in")


def test_the_kept_token_is_readable_by_its_owner_alone(no_login_of_the_developer: Path) -> None:
    folder = no_login_of_the_developer / "orders"
    folder.mkdir(mode=0o755)  # made earlier with a looser mode: tightened
    path = save_token("first\n")
    assert path == folder / "token" == token_file()
    assert (path.stat().st_mode & 0o777, folder.stat().st_mode & 0o777) == (0o600, 0o700)
    save_token("second")
    assert load_token() == "second"
    assert sorted(p.name for p in folder.iterdir()) == ["token"]  # replaced whole, nothing left behind
    assert remove_token()
    assert (load_token(), remove_token()) == ("", False)


@pytest.mark.parametrize("value", ["", "relative/config"])
def test_without_an_absolute_xdg_config_home_the_token_lives_in_dot_config(
    value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", value)
    assert token_file() == tmp_path / ".config" / "orders" / "token"
    assert token_file({"XDG_CONFIG_HOME": "/etc/xdg-elsewhere"}) == Path("/etc/xdg-elsewhere/orders/token")
    assert os.environ["XDG_CONFIG_HOME"] == value


def test_exit_77_is_documented() -> None:
    assert "not signed in" in EXIT_CODES[77]
