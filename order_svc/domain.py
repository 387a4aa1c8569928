"""Order rules: states, validation, transitions and domain errors (pure: no I/O, no protobuf)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from chassis.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from chassis.money import NANOS_PER_UNIT, Money

__all__ = [
    "KNOWN_PAYMENT_METHODS",
    "Caller",
    "IdempotencyKeyReused",
    "LineItem",
    "LineItemDraft",
    "NotYourCustomerId",
    "Order",
    "OrderDraft",
    "OrderNotCancellable",
    "OrderNotFound",
    "OrderState",
    "PaymentOutcome",
    "PaymentResult",
    "RefundState",
    "Step",
    "StepActor",
    "StepKind",
    "place_order",
    "validate_order_id",
]

KNOWN_PAYMENT_METHODS = frozenset({"pm_card_visa", "pm_card_mastercard", "pm_card_amex", "pm_card_declined"})
MAX_LINE_ITEMS = 100
MAX_QUANTITY = 1000
MAX_ID_LENGTH = 128
MAX_UNIT_PRICE_UNITS = 10**12  # keeps any total within google.type.Money's int64 units
_CURRENCY = re.compile(r"^[A-Z]{3}$")
#: Every order id is a UUID in its canonical text form (chassis.ids: new_id, derived_id).
_ORDER_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class OrderState(StrEnum):
    """Where an order is in its lifecycle."""

    CREATED = "CREATED"
    PAID = "PAID"
    CANCELLED = "CANCELLED"


FINAL_STATES = frozenset({OrderState.PAID, OrderState.CANCELLED})


class RefundState(StrEnum):
    """The money side of a cancelled order that had been charged."""

    NONE = "NONE"
    PENDING = "PENDING"
    REFUNDED = "REFUNDED"


class StepKind(StrEnum):
    """What happened at one step of an order's life."""

    PLACED = "PLACED"
    PAYMENT_SUCCEEDED = "PAYMENT_SUCCEEDED"
    PAYMENT_DECLINED = "PAYMENT_DECLINED"
    CANCELLED = "CANCELLED"
    PAYMENT_VOIDED = "PAYMENT_VOIDED"
    REFUND_REQUESTED = "REFUND_REQUESTED"
    REFUNDED = "REFUNDED"


class StepActor(StrEnum):
    """Who caused a step."""

    CUSTOMER = "CUSTOMER"
    PAYMENT = "PAYMENT"


@dataclass(frozen=True)
class Step:
    """One step of an order's timeline."""

    kind: StepKind
    time: datetime
    actor: StepActor
    detail: str = ""


class PaymentResult(StrEnum):
    """What the payment step reports about an order's money."""

    SUCCEEDED = "SUCCEEDED"
    DECLINED = "DECLINED"
    VOIDED = "VOIDED"
    REFUNDED = "REFUNDED"


class OrderNotFound(NotFound):
    """No order has this id."""

    reason = "ORDER_NOT_FOUND"

    def __init__(self, order_id: str) -> None:
        super().__init__("orders.v1.Order", f"orders/{order_id}")


class OrderNotCancellable(FailedPrecondition):
    """Only a CREATED order can be cancelled."""

    reason = "ORDER_NOT_CANCELLABLE"

    def __init__(self, order_id: str, state: OrderState) -> None:
        super().__init__(f"orders/{order_id} is {state.value}; only a CREATED order can be cancelled")


class IdempotencyKeyReused(AlreadyExists):
    """The idempotency key was first used for a different request."""

    reason = "IDEMPOTENCY_KEY_REUSED"

    def __init__(self) -> None:
        super().__init__("this idempotency-key was already used for a different request")


class NotYourCustomerId(PermissionDenied):
    """An order placed in another customer's name."""

    reason = "CUSTOMER_MISMATCH"

    def __init__(self, customer_id: str) -> None:
        super().__init__(f"you are signed in as {customer_id!r}: leave customer_id empty or set it to that")


@dataclass(frozen=True)
class Caller:
    """Who is asking: a signed-in customer, an operator (reads every order), or anyone (auth switched off)."""

    customer_id: str
    operator: bool = False
    unchecked: bool = False

    @classmethod
    def anyone(cls) -> Caller:
        """Authentication is switched off (benchmark baseline only): requests name their customer."""
        return cls("", operator=True, unchecked=True)

    def may_read(self, order: Order) -> bool:
        return self.operator or order.customer_id == self.customer_id

    def may_change(self, order: Order) -> bool:
        return self.unchecked or order.customer_id == self.customer_id

    def customer_for(self, draft: OrderDraft) -> OrderDraft:
        """The draft in the caller's name: an empty customer id is theirs, another customer's is refused."""
        if self.unchecked or draft.customer_id == self.customer_id:
            return draft
        if draft.customer_id:
            raise NotYourCustomerId(self.customer_id)
        return replace(draft, customer_id=self.customer_id)


@dataclass(frozen=True)
class LineItemDraft:
    """A line item as the customer sent it, before validation."""

    sku: str
    quantity: int
    currency: str
    units: int
    nanos: int
    has_price: bool = True


@dataclass(frozen=True)
class OrderDraft:
    """An order as the customer sent it, before validation."""

    customer_id: str
    line_items: Sequence[LineItemDraft]
    payment_method: str = ""

    def fingerprint(self) -> str:
        """A digest of the request, to tell a retry from a different request under the same key."""
        canonical = json.dumps(
            [
                self.customer_id,
                self.payment_method,
                [[i.sku, i.quantity, i.currency, i.units, i.nanos] for i in self.line_items],
            ],
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class LineItem:
    """A validated line item."""

    sku: str
    quantity: int
    unit_price: Money


@dataclass(frozen=True)
class PaymentOutcome:
    """What the payment service reports for an order: charged, declined, voided (never charged) or refunded."""

    order_id: str
    payment_id: str
    result: PaymentResult
    detail: str = ""


@dataclass(frozen=True)
class Order:
    """An order; every change returns a new Order with ``version`` + 1 and the step it took."""

    order_id: str
    customer_id: str
    line_items: tuple[LineItem, ...]
    total: Money
    state: OrderState
    payment_method: str
    create_time: datetime
    update_time: datetime
    cancel_reason: str = ""
    payment_id: str = ""
    refund_state: RefundState = RefundState.NONE
    cancelled_by: StepActor | None = None
    timeline: tuple[Step, ...] = ()
    version: int = 1
    fingerprint: str = field(default="", compare=False)

    @property
    def is_final(self) -> bool:
        """PAID or CANCELLED: the state never moves again (the money side may still settle)."""
        return self.state in FINAL_STATES

    @property
    def is_settled(self) -> bool:
        """Nothing more will happen: PAID, or CANCELLED with the payment's outcome known and no refund owed."""
        if self.state is OrderState.PAID:
            return True
        return (
            self.state is OrderState.CANCELLED
            and bool(self.payment_id)
            and self.refund_state is not RefundState.PENDING
        )

    def _changed(self, now: datetime, steps: Sequence[Step], **changes: object) -> Order:
        return replace(
            self,
            update_time=max(now, self.update_time),
            version=self.version + 1,
            timeline=(*self.timeline, *steps),
            **changes,  # type: ignore[arg-type]
        )

    def cancel(self, reason: str, now: datetime) -> Order:
        """The customer cancels: allowed only from CREATED."""
        if self.state is not OrderState.CREATED:
            raise OrderNotCancellable(self.order_id, self.state)
        reason = reason or "cancelled by the customer"
        return self._changed(
            now,
            [Step(StepKind.CANCELLED, now, StepActor.CUSTOMER, reason)],
            state=OrderState.CANCELLED,
            cancel_reason=reason,
            cancelled_by=StepActor.CUSTOMER,
        )

    def apply_payment(self, outcome: PaymentOutcome, now: datetime) -> Order | None:
        """Apply what the payment step reports; None when it changes nothing (a repeat, or nothing to do).

        A charge that lands after the customer cancelled never revives the order: it is recorded and
        a refund is owed (REFUND_PENDING) until the refund is reported.
        """
        result = outcome.result
        if result is PaymentResult.REFUNDED:
            if self.refund_state is not RefundState.PENDING or outcome.payment_id != self.payment_id:
                return None
            return self._changed(
                now,
                [Step(StepKind.REFUNDED, now, StepActor.PAYMENT, outcome.detail)],
                refund_state=RefundState.REFUNDED,
            )
        if self.payment_id:  # the payment's outcome is known already: a repeat
            return None
        if self.state is OrderState.CREATED:
            if result is PaymentResult.SUCCEEDED:
                return self._changed(
                    now,
                    [Step(StepKind.PAYMENT_SUCCEEDED, now, StepActor.PAYMENT, outcome.detail)],
                    state=OrderState.PAID,
                    payment_id=outcome.payment_id,
                )
            if result is PaymentResult.DECLINED:
                reason = f"payment failed: {outcome.detail or 'declined'}"
                return self._changed(
                    now,
                    [
                        Step(StepKind.PAYMENT_DECLINED, now, StepActor.PAYMENT, outcome.detail),
                        Step(StepKind.CANCELLED, now, StepActor.PAYMENT, reason),
                    ],
                    state=OrderState.CANCELLED,
                    payment_id=outcome.payment_id,
                    cancel_reason=reason,
                    cancelled_by=StepActor.PAYMENT,
                )
            return None  # a void is only ever the answer to a cancel
        if self.state is OrderState.CANCELLED:
            if result is PaymentResult.SUCCEEDED:
                return self._changed(
                    now,
                    [
                        Step(StepKind.PAYMENT_SUCCEEDED, now, StepActor.PAYMENT, outcome.detail),
                        Step(StepKind.REFUND_REQUESTED, now, StepActor.PAYMENT, "charged after the cancel"),
                    ],
                    payment_id=outcome.payment_id,
                    refund_state=RefundState.PENDING,
                )
            kind = StepKind.PAYMENT_VOIDED if result is PaymentResult.VOIDED else StepKind.PAYMENT_DECLINED
            detail = "nothing was charged" if result is PaymentResult.VOIDED else outcome.detail
            return self._changed(now, [Step(kind, now, StepActor.PAYMENT, detail)], payment_id=outcome.payment_id)
        return None


def _validate_money(path: str, item: LineItemDraft, violations: list[FieldViolation]) -> None:
    if not item.has_price:
        violations.append(FieldViolation(path, "is required"))
        return
    if not _CURRENCY.match(item.currency):
        violations.append(FieldViolation(f"{path}.currency_code", "must be a 3-letter ISO 4217 code, e.g. USD"))
    if not -NANOS_PER_UNIT < item.nanos < NANOS_PER_UNIT:
        violations.append(FieldViolation(f"{path}.nanos", "must be between -999,999,999 and 999,999,999"))
    elif item.units * item.nanos < 0:
        violations.append(FieldViolation(f"{path}.nanos", "must have the same sign as units"))
    if item.units < 0 or item.nanos < 0:
        violations.append(FieldViolation(path, "must not be negative"))
    elif item.units > MAX_UNIT_PRICE_UNITS:
        violations.append(FieldViolation(f"{path}.units", f"must be at most {MAX_UNIT_PRICE_UNITS:,}"))


def validate_order_id(order_id: str) -> None:
    """InvalidArgument naming ``order_id`` unless it is a well-formed order id (a UUID), before any lookup."""
    if not order_id:
        problem = "is required: the orderId that CreateOrder returned"
    elif _CONTROL.search(order_id):
        problem = "must not contain control characters"
    elif not _ORDER_ID.fullmatch(order_id):
        problem = "must be a UUID such as 3b241101-e2bb-4255-8caf-4136c566a962 (the orderId that CreateOrder returned)"
    else:
        return
    raise InvalidArgument([FieldViolation("order_id", problem)])


def place_order(draft: OrderDraft, order_id: str, now: datetime) -> Order:
    """Validate a draft and make it a CREATED order; InvalidArgument lists every bad field."""
    violations: list[FieldViolation] = []
    if not draft.customer_id.strip():
        violations.append(FieldViolation("order.customer_id", "is required"))
    elif len(draft.customer_id) > MAX_ID_LENGTH:
        violations.append(FieldViolation("order.customer_id", f"must be at most {MAX_ID_LENGTH} characters"))
    if not draft.line_items:
        violations.append(FieldViolation("order.line_items", "must have at least one item"))
    elif len(draft.line_items) > MAX_LINE_ITEMS:
        violations.append(FieldViolation("order.line_items", f"must have at most {MAX_LINE_ITEMS} items"))
    if draft.payment_method and draft.payment_method not in KNOWN_PAYMENT_METHODS:
        violations.append(
            FieldViolation(
                "order.payment_method",
                f"unknown payment method; use one of {', '.join(sorted(KNOWN_PAYMENT_METHODS))}",
            )
        )
    currencies: set[str] = set()
    for i, item in enumerate(draft.line_items[:MAX_LINE_ITEMS]):
        path = f"order.line_items[{i}]"
        if not item.sku.strip():
            violations.append(FieldViolation(f"{path}.sku", "is required"))
        elif len(item.sku) > MAX_ID_LENGTH:
            violations.append(FieldViolation(f"{path}.sku", f"must be at most {MAX_ID_LENGTH} characters"))
        if not 1 <= item.quantity <= MAX_QUANTITY:
            violations.append(FieldViolation(f"{path}.quantity", f"must be between 1 and {MAX_QUANTITY}"))
        _validate_money(f"{path}.unit_price", item, violations)
        if item.has_price and _CURRENCY.match(item.currency):
            currencies.add(item.currency)
    if len(currencies) > 1:
        violations.append(
            FieldViolation(
                "order.line_items", f"all prices must be in one currency, got {', '.join(sorted(currencies))}"
            )
        )
    if violations:
        raise InvalidArgument(violations)
    items = tuple(LineItem(i.sku, i.quantity, Money.of(i.currency, i.units, i.nanos)) for i in draft.line_items)
    total = Money(items[0].unit_price.currency, 0)
    for line in items:
        total = total.plus(line.unit_price.times(line.quantity))
    return Order(
        order_id=order_id,
        customer_id=draft.customer_id,
        line_items=items,
        total=total,
        state=OrderState.CREATED,
        payment_method=draft.payment_method,
        create_time=now,
        update_time=now,
        timeline=(Step(StepKind.PLACED, now, StepActor.CUSTOMER),),
        fingerprint=draft.fingerprint(),
    )
