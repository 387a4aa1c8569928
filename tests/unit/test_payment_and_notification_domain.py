"""The mock provider's rule and the notifications an order's state confirms are pure functions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chassis.money import Money
from notification_svc.domain import NotificationKind, OrderOutcome, notifications_for
from payment_svc.domain import ChargeRequest, Decision, PaymentStatus, decide, record_payment

NOW = datetime(2026, 11, 24, tzinfo=UTC)


@pytest.mark.parametrize("draw", [0.0, 0.5, 0.999])
def test_visa_always_succeeds_and_declined_always_fails_whatever_the_rate(draw: float) -> None:
    assert decide("pm_card_visa", draw, decline_rate=1.0) == Decision(approved=True)
    declined = decide("pm_card_declined", draw, decline_rate=0.0)
    assert (declined.approved, declined.decline_code) == (False, "card_declined")


def test_other_methods_are_declined_at_the_configured_rate() -> None:
    assert decide("pm_card_amex", 0.29, decline_rate=0.3).approved is False
    assert decide("", 0.3, decline_rate=0.3).approved is True
    assert decide("", 0.0, decline_rate=0.0).approved is True


def test_a_declined_payment_keeps_the_reason() -> None:
    request = ChargeRequest("o", "alice", Money.of("USD", 5, 0), "pm_card_declined")
    payment = record_payment(request, decide("pm_card_declined", 0.0, 0.0), "p", NOW)
    assert (payment.status, payment.decline_reason) == (PaymentStatus.DECLINED, "Your card was declined.")


USD_25 = Money.of("USD", 25, 0)


def kinds(outcome: OrderOutcome) -> list[NotificationKind]:
    return [n.kind for n in notifications_for(outcome, "e", NOW)]


def test_one_outcome_gives_the_same_notification_id_every_time() -> None:
    outcome = OrderOutcome("o-1", "alice", USD_25, paid=True)
    (first,), (again,) = notifications_for(outcome, "e-1", NOW), notifications_for(outcome, "e-2", NOW)
    assert first.notification_id == again.notification_id
    assert first.kind is NotificationKind.ORDER_PAID
    assert first.message == "Your order o-1 is paid: 25.00 USD. Thank you!"


def test_a_failed_payment_notification_says_why() -> None:
    outcome = OrderOutcome("o-1", "alice", USD_25, cancelled=True, cancel_reason="payment failed: No funds.")
    (note,) = notifications_for(outcome, "e", NOW)
    assert note.kind is NotificationKind.PAYMENT_FAILED
    assert note.message.endswith("the payment failed: No funds.")


def test_a_created_order_is_told_nothing_yet() -> None:
    assert kinds(OrderOutcome("o-1", "alice", USD_25)) == []


def test_a_customer_cancel_is_told_as_cancelled_never_as_paid() -> None:
    outcome = OrderOutcome("o-1", "alice", USD_25, cancelled=True, cancelled_by_customer=True, cancel_reason="oops")
    assert kinds(outcome) == [NotificationKind.ORDER_CANCELLED]


def test_a_refunded_order_is_told_cancelled_and_refunded_with_the_amount() -> None:
    outcome = OrderOutcome("o-1", "alice", USD_25, cancelled=True, cancelled_by_customer=True, refunded=True)
    notes = notifications_for(outcome, "e", NOW)
    assert [n.kind for n in notes] == [NotificationKind.ORDER_CANCELLED, NotificationKind.ORDER_REFUNDED]
    assert notes[1].message == "Your order o-1 was refunded: 25.00 USD."


async def test_the_mock_provider_decides_the_same_for_the_same_key_and_seed() -> None:
    from payment_svc.provider import MockPaymentProvider

    request = ChargeRequest("o", "alice", Money.of("USD", 5, 0), "pm_card_amex")
    provider = MockPaymentProvider(decline_rate=0.5, seed=7)
    decisions = [await provider.charge(request, f"key-{i}") for i in range(40)]
    assert decisions == [await MockPaymentProvider(0.5, seed=7).charge(request, f"key-{i}") for i in range(40)]
    assert {d.approved for d in decisions} == {True, False}
    assert len({(await provider.charge(request, "same")).approved for _ in range(10)}) == 1
