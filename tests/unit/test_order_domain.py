"""Order rules: validation names every bad field, totals are exact, transitions are guarded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chassis.errors import InvalidArgument
from chassis.ids import derived_id, new_id
from chassis.money import Money
from order_svc.domain import (
    LineItemDraft,
    Order,
    OrderDraft,
    OrderNotCancellable,
    OrderState,
    PaymentOutcome,
    PaymentResult,
    RefundState,
    StepKind,
    place_order,
    validate_order_id,
)
from order_svc.events import events_for

NOW = datetime(2026, 11, 24, tzinfo=UTC)
LATER = NOW + timedelta(seconds=1)


def item(sku: str = "SKU-1", quantity: int = 1, currency: str = "USD", units: int = 1, nanos: int = 0) -> LineItemDraft:
    return LineItemDraft(sku, quantity, currency, units, nanos)


def draft(*items: LineItemDraft, customer: str = "alice", method: str = "pm_card_visa") -> OrderDraft:
    return OrderDraft(customer, list(items) or [item()], method)


def violations(d: OrderDraft) -> list[str]:
    with pytest.raises(InvalidArgument) as raised:
        place_order(d, "o-1", NOW)
    return [v.field for v in raised.value.violations]


def test_total_is_exact_in_nanos_with_no_float_rounding() -> None:
    order = place_order(
        draft(item(quantity=3, units=0, nanos=100_000_000), item(quantity=7, units=19, nanos=990_000_000)), "o", NOW
    )
    assert order.total == Money("USD", 3 * 100_000_000 + 7 * 19_990_000_000)
    assert (order.total.units, order.total.nanos) == (140, 230_000_000)
    assert str(order.total) == "140.23 USD"


def test_a_valid_draft_becomes_a_created_order_with_a_request_fingerprint() -> None:
    order = place_order(draft(), "o-1", NOW)
    assert (order.state, order.version, order.create_time) == (OrderState.CREATED, 1, NOW)
    assert order.fingerprint == draft().fingerprint() != draft(method="pm_card_amex").fingerprint()


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (draft(customer=" "), "order.customer_id"),
        (draft(customer="x" * 129), "order.customer_id"),
        (OrderDraft("alice", [], ""), "order.line_items"),
        (draft(*[item()] * 101), "order.line_items"),
        (draft(item(sku="")), "order.line_items[0].sku"),
        (draft(item(), item(quantity=0)), "order.line_items[1].quantity"),
        (draft(item(quantity=1001)), "order.line_items[0].quantity"),
        (draft(item(units=-1)), "order.line_items[0].unit_price"),
        (draft(item(units=1, nanos=-5)), "order.line_items[0].unit_price.nanos"),
        (draft(item(nanos=1_000_000_000)), "order.line_items[0].unit_price.nanos"),
        (draft(item(currency="usd")), "order.line_items[0].unit_price.currency_code"),
        (draft(item(units=10**12 + 1)), "order.line_items[0].unit_price.units"),
        (draft(item(), item(currency="EUR")), "order.line_items"),
        (draft(method="pm_bitcoin"), "order.payment_method"),
        (draft(LineItemDraft("SKU", 1, "", 0, 0, has_price=False)), "order.line_items[0].unit_price"),
    ],
)
def test_each_rule_names_its_field(bad: OrderDraft, field: str) -> None:
    assert field in violations(bad)


def test_every_bad_field_is_listed_at_once() -> None:
    assert violations(draft(item(sku="", quantity=0), customer="", method="cash")) == [
        "order.customer_id",
        "order.payment_method",
        "order.line_items[0].sku",
        "order.line_items[0].quantity",
    ]


def test_empty_payment_method_is_allowed() -> None:
    assert place_order(draft(method=""), "o", NOW).payment_method == ""


def test_a_successful_payment_pays_a_created_order_once() -> None:
    order = place_order(draft(), "o", NOW)
    paid = order.apply_payment(PaymentOutcome("o", "p-1", PaymentResult.SUCCEEDED), LATER)
    assert paid is not None
    assert (paid.state, paid.payment_id, paid.version, paid.update_time) == (OrderState.PAID, "p-1", 2, LATER)
    assert paid.apply_payment(PaymentOutcome("o", "p-1", PaymentResult.SUCCEEDED), LATER) is None


def test_a_failed_payment_cancels_with_the_decline_reason() -> None:
    order = place_order(draft(), "o", NOW)
    cancelled = order.apply_payment(
        PaymentOutcome("o", "p-1", PaymentResult.DECLINED, "Your card was declined."), LATER
    )
    assert cancelled is not None
    assert cancelled.state is OrderState.CANCELLED
    assert cancelled.cancel_reason == "payment failed: Your card was declined."


def test_a_final_order_never_moves_again() -> None:
    paid = place_order(draft(), "o", NOW).apply_payment(PaymentOutcome("o", "p-1", PaymentResult.SUCCEEDED), LATER)
    assert paid is not None
    assert paid.apply_payment(PaymentOutcome("o", "p-2", PaymentResult.DECLINED), LATER) is None
    with pytest.raises(OrderNotCancellable):
        paid.cancel("too late", LATER)


def test_a_late_payment_for_a_cancelled_order_is_recorded_but_does_not_revive_it() -> None:
    cancelled = place_order(draft(), "o", NOW).cancel("", LATER)
    assert cancelled.cancel_reason == "cancelled by the customer"
    late = cancelled.apply_payment(PaymentOutcome("o", "p-1", PaymentResult.SUCCEEDED), LATER)
    assert late is not None
    assert (late.state, late.payment_id, late.refund_state) == (OrderState.CANCELLED, "p-1", RefundState.PENDING)
    assert late.apply_payment(PaymentOutcome("o", "p-1", PaymentResult.SUCCEEDED), LATER) is None


def steps(order: Order | None) -> list[StepKind]:
    assert order is not None
    return [step.kind for step in order.timeline]


def test_a_charge_after_a_customer_cancel_owes_a_refund_until_it_is_reported() -> None:
    cancelled = place_order(draft(), "o", NOW).cancel("changed my mind", LATER)
    assert not cancelled.is_settled, "the payment's outcome is not known yet"
    charged = cancelled.apply_payment(PaymentOutcome("o", "p-1", PaymentResult.SUCCEEDED), LATER)
    assert charged is not None
    assert (charged.state, charged.refund_state, charged.is_settled) == (
        OrderState.CANCELLED,
        RefundState.PENDING,
        False,
    )
    assert [e.event_type for e in events_for(charged, cancelled)] == [
        "orders.v1.OrderStateChanged",
        "orders.v1.RefundRequested",
    ]
    refunded = charged.apply_payment(PaymentOutcome("o", "p-1", PaymentResult.REFUNDED, "25.00 USD"), LATER)
    assert refunded is not None
    assert (refunded.refund_state, refunded.is_settled) == (RefundState.REFUNDED, True)
    assert steps(refunded) == [
        StepKind.PLACED,
        StepKind.CANCELLED,
        StepKind.PAYMENT_SUCCEEDED,
        StepKind.REFUND_REQUESTED,
        StepKind.REFUNDED,
    ]
    assert refunded.apply_payment(PaymentOutcome("o", "p-1", PaymentResult.REFUNDED), LATER) is None


def test_a_customer_cancel_tells_payment_svc_and_a_void_settles_the_order_with_nothing_charged() -> None:
    order = place_order(draft(), "o", NOW)
    cancelled = order.cancel("", LATER)
    assert "orders.v1.OrderCancelled" in [e.event_type for e in events_for(cancelled, order)]
    voided = cancelled.apply_payment(PaymentOutcome("o", "p-1", PaymentResult.VOIDED), LATER)
    assert voided is not None
    assert (voided.refund_state, voided.is_settled, steps(voided)[-1]) == (
        RefundState.NONE,
        True,
        StepKind.PAYMENT_VOIDED,
    )


def test_a_refund_for_an_order_that_owes_none_changes_nothing() -> None:
    paid = place_order(draft(), "o", NOW).apply_payment(PaymentOutcome("o", "p-1", PaymentResult.SUCCEEDED), LATER)
    assert paid is not None
    assert paid.apply_payment(PaymentOutcome("o", "p-1", PaymentResult.REFUNDED), LATER) is None


def test_a_void_never_cancels_an_order_that_is_still_waiting_for_its_charge() -> None:
    order = place_order(draft(), "o", NOW)
    assert order.apply_payment(PaymentOutcome("o", "p-1", PaymentResult.VOIDED), LATER) is None


@pytest.mark.parametrize(
    ("order_id", "problem"),
    [
        ("", "is required: the orderId that CreateOrder returned"),
        ("a\x01b", "must not contain control characters"),
        ("\x0c", "must not contain control characters"),
        ("abc\u0085", "must not contain control characters"),  # C1 controls too
        (new_id() + "\n", "must not contain control characters"),
        ("abc", "must be a UUID such as 3b241101-e2bb-4255-8caf-4136c566a962 (the orderId that CreateOrder returned)"),
        (
            new_id() + "x",
            "must be a UUID such as 3b241101-e2bb-4255-8caf-4136c566a962 (the orderId that CreateOrder returned)",
        ),
    ],
)
def test_a_malformed_order_id_is_invalid_naming_order_id_in_the_message_too(order_id: str, problem: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        validate_order_id(order_id)
    assert [(v.field, v.description) for v in raised.value.violations] == [("order_id", problem)]
    assert raised.value.message == f"order_id: {problem}"


def test_every_id_the_service_makes_is_a_well_formed_order_id() -> None:
    for order_id in (new_id(), derived_id("idempotency-key", "alice", "key-1"), new_id().upper()):
        validate_order_id(order_id)  # no exception
