"""Order rules: validation names every bad field, totals are exact, transitions are guarded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chassis.errors import InvalidArgument
from chassis.money import Money
from order_svc.domain import (
    LineItemDraft,
    OrderDraft,
    OrderNotCancellable,
    OrderState,
    PaymentOutcome,
    place_order,
)

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
    paid = order.apply_payment(PaymentOutcome("o", "p-1", succeeded=True), LATER)
    assert paid is not None
    assert (paid.state, paid.payment_id, paid.version, paid.update_time) == (OrderState.PAID, "p-1", 2, LATER)
    assert paid.apply_payment(PaymentOutcome("o", "p-1", succeeded=True), LATER) is None


def test_a_failed_payment_cancels_with_the_decline_reason() -> None:
    order = place_order(draft(), "o", NOW)
    cancelled = order.apply_payment(PaymentOutcome("o", "p-1", False, "Your card was declined."), LATER)
    assert cancelled is not None
    assert cancelled.state is OrderState.CANCELLED
    assert cancelled.cancel_reason == "payment failed: Your card was declined."


def test_a_final_order_never_moves_again() -> None:
    paid = place_order(draft(), "o", NOW).apply_payment(PaymentOutcome("o", "p-1", succeeded=True), LATER)
    assert paid is not None
    assert paid.apply_payment(PaymentOutcome("o", "p-2", succeeded=False), LATER) is None
    with pytest.raises(OrderNotCancellable):
        paid.cancel("too late", LATER)


def test_a_late_payment_for_a_cancelled_order_is_recorded_but_does_not_revive_it() -> None:
    cancelled = place_order(draft(), "o", NOW).cancel("", LATER)
    assert cancelled.cancel_reason == "cancelled by the customer"
    late = cancelled.apply_payment(PaymentOutcome("o", "p-1", succeeded=True), LATER)
    assert late is not None
    assert (late.state, late.payment_id, late.refund_due) == (OrderState.CANCELLED, "p-1", True)
    assert late.apply_payment(PaymentOutcome("o", "p-1", succeeded=True), LATER) is None
