"""The client's result types: frozen dataclasses with exact Decimal money (never the generated messages)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from orders.v1 import orders_pb2

__all__ = ["Actor", "LineItem", "Money", "Order", "OrderState", "OrderStep", "RefundState", "StepKind"]

_NANOS = Decimal(1_000_000_000)
_CENTS = Decimal("0.01")


class OrderState(StrEnum):
    """Where an order is in its lifecycle; PAID and CANCELLED are final."""

    UNSPECIFIED = "UNSPECIFIED"
    CREATED = "CREATED"
    PAID = "PAID"
    CANCELLED = "CANCELLED"

    @property
    def is_final(self) -> bool:
        return self in (OrderState.PAID, OrderState.CANCELLED)


class RefundState(StrEnum):
    """The money side of a cancelled order that had been charged; NONE when no refund is owed."""

    NONE = "NONE"
    PENDING = "PENDING"
    REFUNDED = "REFUNDED"


class StepKind(StrEnum):
    """What happened at one step of an order's life (UNSPECIFIED: a kind this client does not know)."""

    UNSPECIFIED = "UNSPECIFIED"
    PLACED = "PLACED"
    PAYMENT_SUCCEEDED = "PAYMENT_SUCCEEDED"
    PAYMENT_DECLINED = "PAYMENT_DECLINED"
    CANCELLED = "CANCELLED"
    PAYMENT_VOIDED = "PAYMENT_VOIDED"
    REFUND_REQUESTED = "REFUND_REQUESTED"
    REFUNDED = "REFUNDED"


class Actor(StrEnum):
    """Who caused a step: the customer or the payment step."""

    UNSPECIFIED = "UNSPECIFIED"
    CUSTOMER = "CUSTOMER"
    PAYMENT = "PAYMENT"


@dataclass(frozen=True)
class Money:
    """An exact amount in an ISO 4217 currency, e.g. ``Money(Decimal("12.50"), "USD")``."""

    amount: Decimal
    currency: str = "USD"

    @classmethod
    def parse(cls, text: str, currency: str = "USD") -> Money:
        """``"12.50"`` → 12.50 USD; ValueError unless it is a plain decimal with at most 9 fractional digits."""
        try:
            amount = Decimal(text.strip())
        except InvalidOperation:
            raise ValueError(f"{text!r} is not a price; write it like 12.50") from None
        money = cls(amount, currency)
        money.units_nanos()
        return money

    def units_nanos(self) -> tuple[int, int]:
        """The amount as google.type.Money's whole ``units`` and ``nanos`` (same sign, exact)."""
        if not self.amount.is_finite():
            raise ValueError(f"{self.amount} is not a price")
        total_nanos = self.amount * _NANOS
        if total_nanos != total_nanos.to_integral_value():
            raise ValueError(f"{self.amount} has more than 9 decimal places")
        nanos_total = int(total_nanos)
        sign = -1 if nanos_total < 0 else 1
        units, nanos = divmod(abs(nanos_total), 1_000_000_000)
        return sign * units, sign * nanos

    @classmethod
    def from_units_nanos(cls, currency: str, units: int, nanos: int) -> Money:
        """The exact amount, with at least two decimal places (``25.00``, ``0.125``)."""
        amount = (Decimal(units) * _NANOS + Decimal(nanos)) / _NANOS
        exponent = amount.as_tuple().exponent
        return cls(amount.quantize(_CENTS) if isinstance(exponent, int) and exponent > -2 else amount, currency)

    def __str__(self) -> str:
        exponent = self.amount.as_tuple().exponent
        amount = self.amount.quantize(_CENTS) if isinstance(exponent, int) and exponent > -2 else self.amount
        return f"{amount} {self.currency}"


@dataclass(frozen=True)
class LineItem:
    """One line of an order: ``quantity`` units of ``sku`` at ``unit_price`` each."""

    sku: str
    quantity: int
    unit_price: Money

    @classmethod
    def parse(cls, text: str, currency: str = "USD") -> LineItem:
        """``"SKU-1:2:12.50"`` → 2 of SKU-1 at 12.50 (``currency``); ValueError naming the bad part."""
        parts = text.rsplit(":", 2)
        if len(parts) != 3:
            raise ValueError(f"{text!r}: expected SKU:QUANTITY:UNIT_PRICE, e.g. SKU-1:2:12.50")
        sku, quantity_text, price_text = (p.strip() for p in parts)
        if not sku:
            raise ValueError(f"{text!r}: the SKU is empty")
        if not re.fullmatch(r"[+-]?\d+", quantity_text):
            raise ValueError(f"{text!r}: quantity {quantity_text!r} is not a whole number")
        try:
            price = Money.parse(price_text, currency)
        except ValueError as error:
            raise ValueError(f"{text!r}: unit price {error}") from None
        return cls(sku, int(quantity_text), price)

    @property
    def subtotal(self) -> Money:
        return Money(self.unit_price.amount * self.quantity, self.unit_price.currency)


@dataclass(frozen=True)
class OrderStep:
    """One step of an order's timeline: what happened, when (aware UTC), who caused it, and details in words."""

    kind: StepKind
    time: datetime
    actor: Actor
    detail: str = ""


@dataclass(frozen=True)
class Order:
    """An order as the service reports it; ``create_time``/``update_time`` are aware UTC datetimes.

    ``timeline`` lists every step, oldest first. An order received from the service also keeps
    the message it came in (never compared or shown), so that its JSON is exactly the service's.
    """

    order_id: str
    customer_id: str
    line_items: tuple[LineItem, ...]
    total: Money
    state: OrderState
    payment_method: str = ""
    create_time: datetime | None = None
    update_time: datetime | None = None
    cancel_reason: str = ""
    payment_id: str = ""
    refund_state: RefundState = RefundState.NONE
    timeline: tuple[OrderStep, ...] = ()
    _message: orders_pb2.Order | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def name(self) -> str:
        """The resource name, ``orders/{order_id}``."""
        return f"orders/{self.order_id}"

    @property
    def is_final(self) -> bool:
        """PAID or CANCELLED: the state never moves again (the money side of a cancel may still settle)."""
        return self.state.is_final

    @property
    def is_settled(self) -> bool:
        """Nothing more will happen: PAID, or CANCELLED with its money side known.

        A cancelled order's money side is known once the payment's outcome is (``payment_id`` is
        set: declined, voided before any charge, or charged) and no refund is still PENDING.
        """
        if self.state is OrderState.PAID:
            return True
        return (
            self.state is OrderState.CANCELLED
            and bool(self.payment_id)
            and self.refund_state is not RefundState.PENDING
        )
