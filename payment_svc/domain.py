"""Payment rules: one payment per order, how the mock provider decides (pure: no I/O, no protobuf)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from chassis.errors import NotFound
from chassis.money import Money

__all__ = [
    "ALWAYS_DECLINED",
    "ALWAYS_SUCCEEDS",
    "ChargeRequest",
    "Decision",
    "Payment",
    "PaymentNotFound",
    "PaymentStatus",
    "decide",
    "pending_payment",
    "record_payment",
    "voided_payment",
]

ALWAYS_SUCCEEDS = "pm_card_visa"
ALWAYS_DECLINED = "pm_card_declined"


class PaymentStatus(StrEnum):
    """Where one order's payment is: being charged, charged, declined, refunded, or voided (never charged)."""

    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    DECLINED = "DECLINED"
    REFUNDED = "REFUNDED"
    VOIDED = "VOIDED"


class PaymentNotFound(NotFound):
    """No payment exists for this order (yet)."""

    reason = "PAYMENT_NOT_FOUND"

    def __init__(self, order_id: str) -> None:
        super().__init__("payments.v1.Payment", f"payment of orders/{order_id}")


@dataclass(frozen=True)
class ChargeRequest:
    """What OrderCreated asks to charge."""

    order_id: str
    customer_id: str
    amount: Money
    payment_method: str


@dataclass(frozen=True)
class Decision:
    """The provider's answer."""

    approved: bool
    decline_code: str = ""
    decline_reason: str = ""


@dataclass(frozen=True)
class Payment:
    """The one charge of one order."""

    payment_id: str
    order_id: str
    customer_id: str
    amount: Money
    payment_method: str
    status: PaymentStatus
    create_time: datetime
    decline_code: str = ""
    decline_reason: str = ""
    refund_time: datetime | None = None

    def refunded(self, now: datetime) -> Payment:
        """The same payment, refunded in full."""
        return replace(self, status=PaymentStatus.REFUNDED, refund_time=now)


def decide(payment_method: str, draw: float, decline_rate: float) -> Decision:
    """The mock provider's rule: visa succeeds, declined fails, others fail with probability ``decline_rate``.

    ``draw`` is a uniform number in [0, 1) supplied by the caller, which keeps this function pure.
    """
    if payment_method == ALWAYS_SUCCEEDS:
        return Decision(approved=True)
    if payment_method == ALWAYS_DECLINED:
        return Decision(False, "card_declined", "Your card was declined.")
    if draw < decline_rate:
        return Decision(False, "issuer_declined", "The card issuer declined the charge.")
    return Decision(approved=True)


def record_payment(request: ChargeRequest, decision: Decision, payment_id: str, now: datetime) -> Payment:
    """The payment to store for a decision."""
    return Payment(
        payment_id=payment_id,
        order_id=request.order_id,
        customer_id=request.customer_id,
        amount=request.amount,
        payment_method=request.payment_method,
        status=PaymentStatus.SUCCEEDED if decision.approved else PaymentStatus.DECLINED,
        create_time=now,
        decline_code=decision.decline_code,
        decline_reason=decision.decline_reason,
    )


def pending_payment(request: ChargeRequest, payment_id: str, now: datetime) -> Payment:
    """The reservation made before the provider is called: it tells a cancel that a charge is under way."""
    return Payment(
        payment_id=payment_id,
        order_id=request.order_id,
        customer_id=request.customer_id,
        amount=request.amount,
        payment_method=request.payment_method,
        status=PaymentStatus.PENDING,
        create_time=now,
    )


def voided_payment(request: ChargeRequest, payment_id: str, now: datetime) -> Payment:
    """The payment of an order cancelled before any charge: it stops a later charge; nothing is owed."""
    return Payment(
        payment_id=payment_id,
        order_id=request.order_id,
        customer_id=request.customer_id,
        amount=request.amount,
        payment_method=request.payment_method,
        status=PaymentStatus.VOIDED,
        create_time=now,
    )
