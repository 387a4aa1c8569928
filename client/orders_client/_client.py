"""The async client of orders.v1.OrderService over gRPC (``grpc.aio``), with safe retries."""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc
from orders.v1 import orders_pb2, orders_pb2_grpc
from tenacity import AsyncRetrying, retry_if_exception_type, stop_before_delay, wait_exponential_jitter

from orders_client._auth import TOKEN_ENV, Bearer, Token
from orders_client._convert import draft_to_pb, order_from_pb
from orders_client._errors import DeadlineExceeded, OrdersError, Unavailable, Unreachable, from_rpc_error
from orders_client._models import LineItem, Order, OrderState, RefundState

__all__ = ["DEFAULT_TARGET", "IDEMPOTENCY_KEY_HEADER", "TARGET_ENV", "TOKEN_ENV", "OrdersClient"]

DEFAULT_TARGET = "127.0.0.1:50051"
TARGET_ENV = "ORDERS_TARGET"
IDEMPOTENCY_KEY_HEADER = "idempotency-key"
TRANSIENT = (Unavailable, DeadlineExceeded)
T = TypeVar("T")


def _order_id(order: Order | str) -> str:
    return order.order_id if isinstance(order, Order) else order.removeprefix("orders/")


def _describe(order: Order) -> str:
    """``PAID``, ``CANCELLED`` or e.g. ``CANCELLED, refund PENDING`` / ``CANCELLED, payment outcome unknown``."""
    if order.state is OrderState.CANCELLED and not order.payment_id:
        return "CANCELLED, payment outcome unknown"
    if order.refund_state is not RefundState.NONE:
        return f"{order.state.value}, refund {order.refund_state.value}"
    return order.state.value


class OrdersClient:
    """Async client of the order service.

    ``target`` is ``host:port`` of order_svc or of the gateway's gRPC listener (default: the
    ``ORDERS_TARGET`` environment variable, else ``127.0.0.1:50051``).

    ``token`` says who calls: every call carries ``authorization: Bearer <token>``. It is a token
    (a JWT from the identity provider, e.g. ``orders token alice``), or a callable, plain or
    ``async``, that returns one and is asked again before every attempt of every call (retries and
    reopened watches too), so it can hand out a fresh token when the last one expires. Default: the
    ``ORDERS_TOKEN`` environment variable; ``""`` sends none. A token that is missing or refused
    raises :class:`NotAuthenticated`; acting in another customer's name :class:`PermissionDenied`.
    A plain callable runs on the event loop: keep it quick (return a cached token), or make it async.

    ``timeout`` bounds each
    attempt of a call; ``deadline`` bounds a call with all its retries. Reads and ``place_order``
    retry UNAVAILABLE and DEADLINE_EXCEEDED with exponential backoff and jitter; ``cancel_order``
    never retries (a repeated cancel of a cancelled order would fail). Use it as ``async with``,
    or call :meth:`close`.

    First contact is different: until the channel has once connected to ``target``, a call first
    waits at most ``connect_timeout`` seconds for the connection, and if none is made (connection
    refused, unknown host, nothing answering) raises :class:`Unreachable` at once, without retries:
    a wrong address or a stack that is not running is not a transient failure, and waiting out the
    whole ``deadline`` would only hide it. The next call checks again. Once the target has answered,
    UNAVAILABLE and DEADLINE_EXCEEDED are transient (a restart, a dropped connection, a slow
    answer) and keep their retries.
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        token: Token | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float = 10.0,
        deadline: float = 30.0,
        connect_timeout: float = 2.0,
        interceptors: Sequence[Any] = (),
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self.target = target or os.environ.get(TARGET_ENV) or DEFAULT_TARGET
        self._bearer = Bearer(token)
        self.timeout = timeout
        self.deadline = deadline
        self.connect_timeout = connect_timeout
        self._credentials = credentials
        self._interceptors = list(interceptors)
        self._options = list(options)
        self._channel: grpc.aio.Channel | None = None
        self._stub: orders_pb2_grpc.OrderServiceAsyncStub | None = None
        self._reached = False  # the channel has connected to the target at least once
        self._connecting = asyncio.Lock()

    async def _service(self) -> orders_pb2_grpc.OrderServiceAsyncStub:
        """The stub; on first contact, only once the channel has connected (else Unreachable, see the class)."""
        if self._stub is None:  # made lazily, inside the event loop that uses it
            if self._credentials is None:
                self._channel = grpc.aio.insecure_channel(self.target, self._options, None, self._interceptors)
            else:
                self._channel = grpc.aio.secure_channel(
                    self.target, self._credentials, self._options, None, self._interceptors
                )
            self._stub = orders_pb2_grpc.OrderServiceStub(self._channel)
        stub, channel = self._stub, self._channel
        if not self._reached and channel is not None:
            async with self._connecting:
                if not self._reached:
                    wait = min(self.connect_timeout, self.deadline)
                    try:
                        async with asyncio.timeout(wait):
                            await channel.channel_ready()
                    except TimeoutError:
                        raise Unreachable(
                            f"cannot reach the order service at {self.target} (no connection within {wait:g}s)",
                            target=self.target,
                        ) from None
                    self._reached = True
        return stub

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)
        self._channel = self._stub = None
        self._reached = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def _call(self, attempt: Callable[[float], Awaitable[T]], *, retry: bool, deadline: float | None = None) -> T:
        """Run ``attempt(timeout)`` (retrying transient failures when ``retry``) within the overall deadline."""
        budget = self.deadline if deadline is None else deadline
        ends = time.monotonic() + budget
        failures: list[OrdersError] = []

        async def once() -> T:
            remaining = ends - time.monotonic()
            if remaining <= 0:  # out of time: report what went wrong last, not the clock
                raise failures[-1] if failures else DeadlineExceeded(f"no answer from {self.target} within {budget}s")
            try:
                return await attempt(min(self.timeout, remaining))
            except grpc.aio.AioRpcError as error:
                failures.append(from_rpc_error(error))
            except OrdersError as error:
                failures.append(error)
            raise failures[-1]

        if not retry:
            return await once()
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TRANSIENT),
            wait=wait_exponential_jitter(multiplier=0.05, max=2.0, jitter=0.1),
            stop=stop_before_delay(budget),
            reraise=True,
        )
        return await retrying(once)

    async def place_order(
        self,
        customer_id: str,
        items: Iterable[LineItem | str],
        *,
        payment_method: str = "",
        currency: str = "USD",
        idempotency_key: str | None = None,
        deadline: float | None = None,
    ) -> Order:
        """Place an order and return it (state CREATED); items are LineItems or ``"SKU:QTY:PRICE"`` strings.

        The order is the signed-in customer's: ``customer_id`` may be ``""`` (the token names the
        customer) or that customer's id; another customer's id raises PermissionDenied.

        Always sends an idempotency key (a fresh UUID unless given) and reuses it on every retry,
        so a retry after a lost answer returns the first order instead of creating a second one.
        Raises InvalidOrder (with every bad field), IdempotencyConflict, NotAuthenticated,
        PermissionDenied, Unavailable, DeadlineExceeded.
        """
        try:
            lines = [item if isinstance(item, LineItem) else LineItem.parse(item, currency) for item in items]
        except ValueError as error:
            raise OrdersError(str(error)) from None
        request = orders_pb2.CreateOrderRequest(order=draft_to_pb(customer_id, lines, payment_method))
        key = ((IDEMPOTENCY_KEY_HEADER, idempotency_key or str(uuid.uuid4())),)
        stub = await self._service()

        async def attempt(timeout: float) -> orders_pb2.Order:
            metadata = (*await self._bearer.metadata(), *key)
            return await stub.CreateOrder(request, timeout=timeout, metadata=metadata)

        return order_from_pb(await self._call(attempt, retry=True, deadline=deadline))

    async def get_order(self, order_id: str) -> Order:
        """The order now; OrderNotFound if no order has this id, or it is another customer's."""
        stub = await self._service()
        request = orders_pb2.GetOrderRequest(order_id=_order_id(order_id))

        async def attempt(timeout: float) -> orders_pb2.Order:
            return await stub.GetOrder(request, timeout=timeout, metadata=await self._bearer.metadata())

        return order_from_pb(await self._call(attempt, retry=True))

    async def list_orders(self, customer_id: str = "", *, page_size: int = 100) -> AsyncIterator[Order]:
        """The signed-in customer's orders, newest first, fetching page after page.

        ``customer_id`` may be ``""`` or the caller's own id (another's raises PermissionDenied);
        a caller with the operator role (``orders:admin``) may name anyone, or list everyone's with ``""``.
        """
        stub = await self._service()
        token = ""
        while True:
            request = orders_pb2.ListOrdersRequest(customer_id=customer_id, page_size=page_size, page_token=token)

            async def attempt(timeout: float, request: orders_pb2.ListOrdersRequest = request) -> Any:
                return await stub.ListOrders(request, timeout=timeout, metadata=await self._bearer.metadata())

            page: orders_pb2.ListOrdersResponse = await self._call(attempt, retry=True)
            for order in page.orders:
                yield order_from_pb(order)
            token = page.next_page_token
            if not token:
                return

    async def cancel_order(self, order_id: str, reason: str = "") -> Order:
        """Cancel a CREATED order; OrderNotCancellable if it is already PAID or CANCELLED. Never retried."""
        stub = await self._service()
        request = orders_pb2.CancelOrderRequest(order_id=_order_id(order_id), reason=reason)

        async def attempt(timeout: float) -> orders_pb2.Order:
            return await stub.CancelOrder(request, timeout=timeout, metadata=await self._bearer.metadata())

        return order_from_pb(await self._call(attempt, retry=False))

    async def watch_order(self, order: Order | str) -> AsyncIterator[Order]:
        """Yield the order now and after every change; ends once it is settled (see :attr:`Order.is_settled`).

        Settled means PAID, or CANCELLED with its money side known: an order cancelled while its
        payment was in flight goes on to show the void, or the charge and its refund.

        A dropped stream (UNAVAILABLE, or closed before the order is settled) is reopened with
        backoff; after ``deadline`` seconds of reopening without a new version it raises Unavailable.
        An order seen twice across reconnects is yielded once.
        """
        stub = await self._service()
        request = orders_pb2.WatchOrderRequest(order_id=_order_id(order))
        last: Order | None = None
        failures = 0
        since = time.monotonic()  # start of the current run of attempts that brought nothing new
        while True:
            opened, progressed = time.monotonic(), False
            call = stub.WatchOrder(request, metadata=await self._bearer.metadata())
            try:
                async for message in call:
                    current = order_from_pb(message)
                    if current != last:
                        last, progressed = current, True
                        yield current
                    if current.is_settled:
                        return
            except grpc.aio.AioRpcError as error:
                mapped = from_rpc_error(error)
                if not isinstance(mapped, Unavailable):
                    raise mapped from None
            finally:
                call.cancel()
            now = time.monotonic()
            if progressed or now - opened > self.deadline:  # a new version, or a long-lived stream: start afresh
                failures, since = 0, now
            failures += 1
            if now - since > self.deadline:
                raise Unavailable(f"lost the watch of orders/{request.order_id} and could not resume it")
            await asyncio.sleep(min(2.0, 0.05 * 2**failures) * (0.5 + random.random() / 2))

    async def wait_until_final(self, order: Order | str, timeout: float = 60.0) -> Order:
        """The order once it is settled; DeadlineExceeded (a TimeoutError) after ``timeout`` seconds.

        Settled (:attr:`Order.is_settled`): PAID, or CANCELLED with its money side known (no refund pending).
        """
        if isinstance(order, Order) and order.is_settled:
            return order
        last: Order | None = None
        try:
            async with asyncio.timeout(timeout):
                async for seen in self.watch_order(order):
                    last = seen
        except TimeoutError:
            state = _describe(last) if last is not None else "unknown"
            raise DeadlineExceeded(
                f"orders/{_order_id(order)} is not settled after {timeout}s (last state: {state})"
            ) from None
        if last is None or not last.is_settled:  # pragma: no cover - watch_order ends only once settled
            raise OrdersError(f"the watch of orders/{_order_id(order)} ended before the order was settled")
        return last
