"""order_svc's own metrics: orders created and reaching each final state, counted where the change commits.

The use cases know nothing of metrics. The composition root wraps the store port in
``CountingOrderStore``, which counts after the store said a write committed: a new order
(``create`` that created it) and a saved change that moved an order into PAID or CANCELLED.
Each order is counted once per state, whichever replica committed it: a change is saved under a
version guard, so only one writer wins it, and a repeat (an idempotent retry, a redelivery)
commits nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import Counter

from chassis.outbox import OutboxEvent, OutboxSource
from chassis.paging import Cursor
from order_svc.domain import Order, OrderState, StepKind
from order_svc.store import OrderStore

__all__ = ["ORDERS", "CountingOrderStore", "entered_state"]

ORDERS = Counter(
    "orders_total",
    "Orders that reached a state (CREATED: placed; PAID, CANCELLED: final), counted when the change committed",
    ["state"],
)


def entered_state(order: Order) -> OrderState | None:
    """The final state a just-saved change moved ``order`` into, or None (no final state entered by it).

    A change appends the steps it took to the timeline, ending with the one that moved the state:
    ``PAYMENT_SUCCEEDED`` into PAID, ``CANCELLED`` into CANCELLED (by the customer, or after a
    declined payment). Later changes of a cancelled order (its void, a late charge and its refund)
    end with other steps.
    """
    if not order.timeline:
        return None
    last = order.timeline[-1].kind
    if last is StepKind.PAYMENT_SUCCEEDED and order.state is OrderState.PAID:
        return OrderState.PAID
    if last is StepKind.CANCELLED and order.state is OrderState.CANCELLED:
        return OrderState.CANCELLED
    return None


class CountingOrderStore:
    """An ``OrderStore`` that counts the orders its commits create and move into a final state."""

    def __init__(self, inner: OrderStore) -> None:
        self._inner = inner
        self.outbox: OutboxSource = inner.outbox
        self._counted = {state: ORDERS.labels(state.value) for state in OrderState}

    async def open(self) -> None:
        await self._inner.open()

    async def close(self) -> None:
        await self._inner.close()

    async def create(self, order: Order, events: Sequence[OutboxEvent]) -> tuple[Order, bool]:
        saved, created = await self._inner.create(order, events)
        if created:
            self._counted[OrderState.CREATED].inc()
        return saved, created

    async def get(self, order_id: str) -> Order | None:
        return await self._inner.get(order_id)

    async def page(self, customer_id: str, limit: int, after: Cursor | None) -> list[Order]:
        return await self._inner.page(customer_id, limit, after)

    async def save(self, order: Order, expected_version: int, events: Sequence[OutboxEvent]) -> bool:
        saved = await self._inner.save(order, expected_version, events)
        if saved:
            state = entered_state(order)
            if state is not None:
                self._counted[state].inc()
        return saved
