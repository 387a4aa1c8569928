"""The blocking counterpart of OrdersClient: the same calls, run on a private event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc

from orders_client._client import OrdersClient
from orders_client._models import LineItem, Order

__all__ = ["SyncOrdersClient"]

T = TypeVar("T")


class SyncOrdersClient:
    """Blocking client with the same methods, arguments, results and errors as :class:`OrdersClient`.

    It owns a private event loop (``asyncio.Runner``), so do not call it from inside a running
    event loop: use :class:`OrdersClient` there. Use it as ``with``, or call :meth:`close`.
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float = 10.0,
        deadline: float = 30.0,
        interceptors: Sequence[Any] = (),
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self._runner = asyncio.Runner()
        self._closed = False
        self._client = OrdersClient(
            target,
            credentials=credentials,
            timeout=timeout,
            deadline=deadline,
            interceptors=interceptors,
            options=options,
        )

    @property
    def target(self) -> str:
        return self._client.target

    def _iterate(self, source: AsyncIterator[T]) -> Iterator[T]:
        async def step() -> T:
            return await anext(source)

        try:
            while True:
                try:
                    yield self._runner.run(step())
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                self._runner.run(aclose())

    def place_order(
        self,
        customer_id: str,
        items: Iterable[LineItem | str],
        *,
        payment_method: str = "",
        currency: str = "USD",
        idempotency_key: str | None = None,
        deadline: float | None = None,
    ) -> Order:
        """See :meth:`OrdersClient.place_order`."""
        return self._runner.run(
            self._client.place_order(
                customer_id,
                items,
                payment_method=payment_method,
                currency=currency,
                idempotency_key=idempotency_key,
                deadline=deadline,
            )
        )

    def get_order(self, order_id: str) -> Order:
        """See :meth:`OrdersClient.get_order`."""
        return self._runner.run(self._client.get_order(order_id))

    def list_orders(self, customer_id: str = "", *, page_size: int = 100) -> Iterator[Order]:
        """See :meth:`OrdersClient.list_orders`."""
        return self._iterate(self._client.list_orders(customer_id, page_size=page_size))

    def cancel_order(self, order_id: str, reason: str = "") -> Order:
        """See :meth:`OrdersClient.cancel_order`."""
        return self._runner.run(self._client.cancel_order(order_id, reason))

    def watch_order(self, order: Order | str) -> Iterator[Order]:
        """See :meth:`OrdersClient.watch_order`."""
        return self._iterate(self._client.watch_order(order))

    def wait_until_final(self, order: Order | str, timeout: float = 60.0) -> Order:
        """See :meth:`OrdersClient.wait_until_final`."""
        return self._runner.run(self._client.wait_until_final(order, timeout))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._runner.run(self._client.close())
        self._runner.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
