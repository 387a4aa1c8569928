"""Payment rules: one payment per order, how the mock provider decides (pure: no I/O, no protobuf)."""

from __future__ import annotations

from dataclasses import dataclass
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
    "record_payment",
]

ALWAYS_SUCCEEDS = "pm_card_visa"
ALWAYS_DECLINED = "pm_card_declined"


class PaymentStatus(StrEnum):
    """The outcome of a charge."""

    SUCCEEDED = "SUCCEEDED"
    DECLINED = "DECLINED"


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
