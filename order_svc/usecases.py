"""What order_svc does: place, get, list, cancel, watch, and apply payment results; the ports it needs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from chassis.ids import derived_id, new_id, utc_now
from chassis.logging import get_logger
from chassis.paging import fetch_page
from chassis.timefmt import format_time
from order_svc.domain import (
    Caller,
    IdempotencyKeyReused,
    NotYourCustomerId,
    Order,
    OrderDraft,
    OrderNotFound,
    PaymentOutcome,
    place_order,
    validate_order_id,
)
from order_svc.events import events_for
from order_svc.store import OrderStore

__all__ = ["ChangeFeed", "OrderUseCases"]

log = get_logger(__name__)
WATCH_RECHECK_SECONDS = 5.0
MAX_SAVE_ATTEMPTS = 20


class Signal(Protocol):
    """Fires when the watched order may have changed."""

    async def wait(self, timeout: float) -> None:
        """Return on the next change, or after ``timeout`` seconds."""
        ...


class ChangeFeed(Protocol):
    """Tells watchers that an order changed, whichever replica changed it."""

    def subscribe(self, order_id: str) -> AbstractAsyncContextManager[Signal]: ...


class OrderUseCases:
    """The application service of order_svc; I/O only through the store, the feed and the relay hook."""

    def __init__(
        self,
        store: OrderStore,
        changes: ChangeFeed,
        on_commit: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = utc_now,
        ids: Callable[[], str] = new_id,
    ) -> None:
        self._store = store
        self._changes = changes
        self._on_commit = on_commit
        self._clock = clock
        self._ids = ids

    async def place(self, draft: OrderDraft, idempotency_key: str, caller: Caller) -> Order:
        """Validate and save a CREATED order with its OrderCreated event; a repeated key returns the first order.

        The order is the caller's; an idempotency key is scoped to its customer (two customers using
        the same key make two orders).
        """
        draft = caller.customer_for(draft)
        order_id = derived_id("idempotency-key", draft.customer_id, idempotency_key) if idempotency_key else self._ids()
        order = place_order(draft, order_id, self._clock())
        saved, created = await self._store.create(order, events_for(order))
        if created:
            self._on_commit()
            log.info(
                "order created",
                order_id=order.order_id,
                customer_id=order.customer_id,
                total=str(order.total),
            )
        elif saved.fingerprint != order.fingerprint:
            raise IdempotencyKeyReused()
        return saved

    async def _get(self, order_id: str) -> Order:
        order = await self._store.get(order_id) if order_id else None
        if order is None:
            raise OrderNotFound(order_id)
        return order

    async def get(self, order_id: str, caller: Caller) -> Order:
        """The order, if the caller may read it; another customer's order is NOT_FOUND, like an unknown id.

        An id that is not a UUID (as every order id is) is INVALID_ARGUMENT naming ``order_id``.
        """
        validate_order_id(order_id)
        order = await self._get(order_id)
        if not caller.may_read(order):
            raise OrderNotFound(order_id)
        return order

    async def list(self, customer_id: str, size: int, token: str, caller: Caller) -> tuple[list[Order], str]:
        """One page of orders, newest first, and the token of the next page ('' at the end).

        A customer sees only their own orders (a filter naming someone else is refused); an operator
        may list anyone's, or everyone's.
        """
        if not caller.operator:
            if customer_id and customer_id != caller.customer_id:
                raise NotYourCustomerId(caller.customer_id)
            customer_id = caller.customer_id
        return await fetch_page(
            lambda limit, after: self._store.page(customer_id, limit, after),
            size=size,
            token=token,
            scope=customer_id,
            cursor_of=lambda o: (format_time(o.create_time), o.order_id),
        )

    async def _change(self, order_id: str, change: Callable[[Order], Order | None]) -> Order:
        """Read, apply a pure transition, save guarded by version; retry when another writer won."""
        for _ in range(MAX_SAVE_ATTEMPTS):
            current = await self._get(order_id)
            updated = change(current)
            if updated is None:
                return current
            if await self._store.save(updated, current.version, events_for(updated, current)):
                self._on_commit()
                return updated
        raise RuntimeError(f"orders/{order_id} kept changing under {MAX_SAVE_ATTEMPTS} attempts")

    async def cancel(self, order_id: str, reason: str, caller: Caller) -> Order:
        """The customer cancels their own order; anyone else's is NOT_FOUND (a malformed id: INVALID_ARGUMENT)."""
        validate_order_id(order_id)
        if not caller.may_change(await self._get(order_id)):
            raise OrderNotFound(order_id)
        order = await self._change(order_id, lambda o: o.cancel(reason, self._clock()))
        log.info("order cancelled by customer", order_id=order_id, reason=order.cancel_reason)
        return order

    async def apply_payment(self, outcome: PaymentOutcome) -> None:
        """CREATED → PAID or CANCELLED, and a cancelled order's money side; a repeat changes nothing."""
        try:
            order = await self._change(outcome.order_id, lambda o: o.apply_payment(outcome, self._clock()))
        except OrderNotFound as error:
            # Retried, then dead-lettered after max_deliver: replayable once the order exists.
            raise LookupError(f"payment {outcome.payment_id} for unknown order {outcome.order_id}") from error
        log.info(
            "payment applied",
            order_id=order.order_id,
            result=outcome.result.value,
            state=order.state.value,
            refund=order.refund_state.value,
            payment_id=outcome.payment_id,
        )

    async def watch(self, order_id: str, caller: Caller) -> AsyncIterator[Order]:
        """The order now and after every change; ends once it is settled (its money side included)."""
        await self.get(order_id, caller)  # NOT_FOUND before subscribing to anything
        async with self._changes.subscribe(order_id) as signal:
            order = await self._get(order_id)
            yield order
            while not order.is_settled:
                with contextlib.suppress(asyncio.TimeoutError):
                    await signal.wait(WATCH_RECHECK_SECONDS)
                latest = await self._get(order_id)
                if latest.version != order.version:
                    order = latest
                    yield order
