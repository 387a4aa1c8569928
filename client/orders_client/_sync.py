"""The blocking counterpart of OrdersClient: the same calls, run on one event loop thread the client owns."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc

from orders_client._auth import Token, in_worker_thread
from orders_client._client import OrdersClient
from orders_client._models import LineItem, Order

__all__ = ["SyncOrdersClient"]

T = TypeVar("T")


class SyncOrdersClient:
    """Blocking client with the same methods, arguments, results and errors as :class:`OrdersClient`.

    Safe to share between threads: every call runs on one event loop that lives in a thread the
    client owns (one gRPC channel for all callers); the calling thread blocks until its answer.
    Use it as ``with``, or call :meth:`close`, which ends that thread; a call after it raises
    RuntimeError. Inside ``async`` code use :class:`OrdersClient` instead: this one would block the loop.

    ``token`` is as for :class:`OrdersClient`: a token, ``$ORDERS_TOKEN`` by default, or a callable
    (plain or ``async``) asked before every call; a plain one runs in a worker thread, so one that
    takes a while (e.g. signs in again) never holds up the calls of other threads.
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
        self._client = OrdersClient(
            target,
            token=in_worker_thread(token) if token is not None and not isinstance(token, str) else token,
            credentials=credentials,
            timeout=timeout,
            deadline=deadline,
            connect_timeout=connect_timeout,
            interceptors=interceptors,
            options=options,
        )
        self._closing = threading.Lock()
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=f"orders-client {self.target}", daemon=True)
        self._thread.start()

    @property
    def target(self) -> str:
        return self._client.target

    def _serve(self) -> None:
        """The loop thread: run every call until :meth:`close` stops the loop, then tidy up and close it."""
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            try:
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    def _run(self, call: Coroutine[Any, Any, T], *, closing: bool = False) -> T:
        """Run ``call`` on the client's loop and wait for its result (cancelled if this thread is interrupted)."""
        if threading.current_thread() is self._thread:
            call.close()
            raise RuntimeError("SyncOrdersClient called from its own event loop thread; use OrdersClient there")
        with self._closing:  # no call starts once close() has begun, so none is left behind on a stopped loop
            if self._closed and not closing:
                call.close()
                raise RuntimeError("SyncOrdersClient is closed")
            future = asyncio.run_coroutine_threadsafe(call, self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. Ctrl-C in the caller: do not leave the call running
            raise

    def _iterate(self, source: AsyncIterator[T]) -> Iterator[T]:
        async def step() -> T:
            return await anext(source)

        try:
            while True:
                try:
                    yield self._run(step())
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                if threading.current_thread() is self._thread:  # garbage-collected on the loop thread itself
                    self._loop.create_task(aclose())
                elif not self._closed:
                    with contextlib.suppress(RuntimeError):  # closed meanwhile: the loop finalizes it
                        self._run(aclose())

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
        return self._run(
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
        return self._run(self._client.get_order(order_id))

    def list_orders(self, customer_id: str = "", *, page_size: int = 100) -> Iterator[Order]:
        """See :meth:`OrdersClient.list_orders`."""
        return self._iterate(self._client.list_orders(customer_id, page_size=page_size))

    def cancel_order(self, order_id: str, reason: str = "") -> Order:
        """See :meth:`OrdersClient.cancel_order`."""
        return self._run(self._client.cancel_order(order_id, reason))

    def watch_order(self, order: Order | str) -> Iterator[Order]:
        """See :meth:`OrdersClient.watch_order`."""
        return self._iterate(self._client.watch_order(order))

    def wait_until_final(self, order: Order | str, timeout: float = 60.0) -> Order:
        """See :meth:`OrdersClient.wait_until_final`."""
        return self._run(self._client.wait_until_final(order, timeout))

    def close(self) -> None:
        """Close the channel and end the loop thread; safe to call twice and from any thread but the loop's."""
        with self._closing:
            if self._closed:
                return
            self._closed = True
        try:
            self._run(self._client.close(), closing=True)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
