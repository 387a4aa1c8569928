"""The bearer token on every call of the client: fixed, from $ORDERS_TOKEN, or from a source asked per call."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Callable

import grpc
import pytest

from chassis.errors import Unauthenticated
from chassis.grpc_errors import to_status
from order_svc import domain
from orders_client import NotAuthenticated, OrdersClient, OrdersError, PermissionDenied, SyncOrdersClient
from orders_client._auth import Bearer, token_claims
from orders_client._errors import from_rpc_error
from tests.unit.test_client_calls import TOKEN, FakeOrders, paid, refunded, serving


def _rpc_error(status: grpc.Status) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        status.code, grpc.aio.Metadata(), grpc.aio.Metadata(*status.trailing_metadata), status.details, None
    )


class Tokens:
    """A token source that hands out token-1, token-2, … (each one accepted by ``fake``), counting its calls."""

    def __init__(self, fake: FakeOrders) -> None:
        self.fake = fake
        self.issued: list[str] = []

    def __call__(self) -> str:
        token = f"token-{len(self.issued) + 1}"
        self.fake.tokens.add(token)
        self.issued.append(token)
        return token


# --- every call carries the token ---------------------------------------------------------------


async def test_every_call_carries_the_bearer_token() -> None:
    fake = FakeOrders(paid("o-1"))
    async with serving(fake) as target, OrdersClient(target, token=TOKEN) as client:
        await client.place_order("", ["A:1:1"])
        await client.get_order("o-1")
        _ = [o async for o in client.list_orders()]
        _ = [o async for o in client.watch_order("o-1")]
        with pytest.raises(OrdersError, match="not in the fake"):
            await client.cancel_order("o-1")
    assert fake.seen == [
        ("CreateOrder", TOKEN),
        ("GetOrder", TOKEN),
        ("ListOrders", TOKEN),
        ("WatchOrder", TOKEN),
        ("CancelOrder", TOKEN),
    ]
    assert len(fake.idempotency_keys) == 1  # the idempotency key still goes along


async def test_orders_token_is_the_default_and_an_empty_token_sends_none(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeOrders(paid("o-1"))
    monkeypatch.setenv("ORDERS_TOKEN", TOKEN)
    async with serving(fake) as target:
        async with OrdersClient(target) as client:
            await client.get_order("o-1")
        assert fake.seen == [("GetOrder", TOKEN)]
        async with OrdersClient(target, token="") as client:
            with pytest.raises(NotAuthenticated, match="bearer token is required"):
                await client.get_order("o-1")
        assert fake.seen == [("GetOrder", TOKEN)]


async def test_a_token_pasted_with_its_bearer_prefix_is_sent_once() -> None:
    fake = FakeOrders(paid("o-1"))
    async with serving(fake) as target, OrdersClient(target, token=f"  Bearer {TOKEN}\n") as client:
        await client.get_order("o-1")
    assert fake.seen == [("GetOrder", TOKEN)]


async def test_no_token_is_not_authenticated_and_never_retried() -> None:
    fake = FakeOrders(paid("o-1"))
    async with serving(fake) as target, OrdersClient(target) as client:
        with pytest.raises(NotAuthenticated) as caught:
            await client.get_order("o-1")
        with pytest.raises(NotAuthenticated):
            _ = [o async for o in client.watch_order("o-1")]
    assert caught.value.code is grpc.StatusCode.UNAUTHENTICATED
    assert fake.calls == {}
    assert fake.attempts == {"GetOrder": 1, "WatchOrder": 1}  # refused at the door, and not tried again


async def test_a_refused_token_is_not_authenticated() -> None:
    fake = FakeOrders(paid("o-1"))
    async with serving(fake) as target, OrdersClient(target, token="stale") as client:
        with pytest.raises(NotAuthenticated, match="Signature has expired"):
            await client.place_order("", ["A:1:1"])
    assert fake.seen == [("CreateOrder", "stale")]


# --- a token source: asked before every call, retry and reopened watch -------------------------


async def test_a_token_source_is_asked_per_call_and_its_refreshed_token_is_used() -> None:
    fake = FakeOrders(paid("o-1"))
    tokens = Tokens(fake)
    async with serving(fake) as target, OrdersClient(target, token=tokens) as client:
        await client.get_order("o-1")
        fake.tokens.discard("token-1")  # token-1 expires: the source's next one is used
        await client.get_order("o-1")
        await client.place_order("", ["A:1:1"])
    assert tokens.issued == ["token-1", "token-2", "token-3"]
    assert fake.seen == [("GetOrder", "token-1"), ("GetOrder", "token-2"), ("CreateOrder", "token-3")]


async def test_an_async_token_source_is_awaited() -> None:
    fake = FakeOrders(paid("o-1"))
    tokens = Tokens(fake)

    async def source() -> str:
        await asyncio.sleep(0)
        return tokens()

    async with serving(fake) as target, OrdersClient(target, token=source) as client:
        _ = [o async for o in client.list_orders()]
    assert fake.seen == [("ListOrders", "token-1")]


async def test_each_retry_asks_the_source_again() -> None:
    fake = FakeOrders(paid("o-1"))
    fake.unavailable = 2
    tokens = Tokens(fake)
    async with serving(fake) as target, OrdersClient(target, token=tokens) as client:
        await client.get_order("o-1")
    assert fake.seen == [("GetOrder", "token-1"), ("GetOrder", "token-2"), ("GetOrder", "token-3")]


async def test_a_reopened_watch_carries_a_fresh_token() -> None:
    fake = FakeOrders(refunded("o-1"))
    fake.drop_watch_after = 2
    tokens = Tokens(fake)
    async with serving(fake) as target, OrdersClient(target, token=tokens) as client:
        seen = [order async for order in client.watch_order("o-1")]
    assert seen[-1].is_settled
    assert fake.seen == [("WatchOrder", "token-1"), ("WatchOrder", "token-2")]


async def test_what_the_token_source_raises_reaches_the_caller() -> None:
    def broken() -> str:
        raise LookupError("no token in the keyring")

    async with serving(FakeOrders(paid("o-1"))) as target, OrdersClient(target, token=broken) as client:
        with pytest.raises(LookupError, match="keyring"):
            await client.get_order("o-1")


async def test_a_token_source_that_returns_no_string_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="returned int"):
        await Bearer(lambda: 42).token()  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="token must be"):
        Bearer(42)  # type: ignore[arg-type]


async def test_the_sync_client_runs_a_plain_source_off_its_loop_thread_and_awaits_an_async_one() -> None:
    fake = FakeOrders(paid("o-1"))
    threads: list[threading.Thread] = []
    tokens = Tokens(fake)

    def plain() -> str:
        threads.append(threading.current_thread())
        return tokens()

    async def coroutine() -> str:
        return tokens()

    def use(source: Callable[[], object]) -> threading.Thread:
        with SyncOrdersClient(target, token=source) as client:  # type: ignore[arg-type]
            client.get_order("o-1")
            _ = list(client.watch_order("o-1"))
            return client._thread

    async with serving(fake) as target:
        loop_thread = await asyncio.to_thread(use, plain)
        await asyncio.to_thread(use, coroutine)
    assert len(threads) == 2
    assert all(thread is not loop_thread for thread in threads)  # a slow sign-in holds up no other caller
    assert [token for _, token in fake.seen] == ["token-1", "token-2", "token-3", "token-4"]


# --- UNAUTHENTICATED and PERMISSION_DENIED, as the chassis sends them ---------------------------


def test_unauthenticated_maps_to_not_authenticated() -> None:
    error = from_rpc_error(_rpc_error(to_status(Unauthenticated("the token is not valid: Signature has expired"))))
    assert type(error) is NotAuthenticated
    assert error.code is grpc.StatusCode.UNAUTHENTICATED
    assert error.reason == "UNAUTHENTICATED"
    assert error.message == "the token is not valid: Signature has expired"


def test_permission_denied_carries_its_error_info_reason() -> None:
    error = from_rpc_error(_rpc_error(to_status(domain.NotYourCustomerId("alice"))))
    assert type(error) is PermissionDenied
    assert error.code is grpc.StatusCode.PERMISSION_DENIED
    assert error.reason == "CUSTOMER_MISMATCH"
    assert error.message == "you are signed in as 'alice': leave customer_id empty or set it to that"


# --- reading a token's claims (for messages only) -----------------------------------------------


def jwt_with(claims: dict[str, object]) -> str:
    """A JWT-shaped token with these claims (unsigned: the CLI reads claims only to word its messages)."""

    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def test_token_claims_reads_a_jwt_and_nothing_else() -> None:
    assert token_claims(jwt_with({"sub": "alice", "exp": 5})) == {"sub": "alice", "exp": 5}
    assert token_claims("Bearer " + jwt_with({"sub": "bob"})) == {"sub": "bob"}
    assert token_claims("opaque-access-token") == {}
    assert token_claims("a.!!!.c") == {}
    assert token_claims(f"a.{base64.urlsafe_b64encode(b'[1]').decode()}.c") == {}
