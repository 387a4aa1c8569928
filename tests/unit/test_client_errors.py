"""gRPC status → the client's exceptions, using the very statuses the services' chassis produces."""

from __future__ import annotations

import grpc
import pytest

from chassis.errors import FieldViolation as DomainFieldViolation
from chassis.errors import InvalidArgument
from chassis.grpc_errors import to_status
from order_svc import domain
from orders_client import (
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    IdempotencyConflict,
    InvalidOrder,
    OrderNotCancellable,
    OrderNotFound,
    OrdersError,
    Unavailable,
)
from orders_client._errors import from_rpc_error, from_status
from orders_client.cli import EXIT_CODES, _option, main


def _rpc_error(status: grpc.Status) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        status.code,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(*status.trailing_metadata),
        status.details,
        None,
    )


def test_invalid_argument_carries_every_field_violation() -> None:
    domain = InvalidArgument(
        [
            DomainFieldViolation("order.customer_id", "is required"),
            DomainFieldViolation("order.line_items[0].quantity", "must be between 1 and 1000"),
        ]
    )
    error = from_rpc_error(_rpc_error(to_status(domain)))
    assert isinstance(error, InvalidOrder)
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "INVALID_ARGUMENT"
    assert error.violations == (
        FieldViolation("order.customer_id", "is required"),
        FieldViolation("order.line_items[0].quantity", "must be between 1 and 1000"),
    )
    # The message names every bad field too, for whoever sees only the message.
    assert error.message == "order.customer_id: is required; order.line_items[0].quantity: must be between 1 and 1000"
    assert "order.line_items[0].quantity: must be between 1 and 1000" in str(error)


def test_not_found_names_the_resource() -> None:
    error = from_rpc_error(_rpc_error(to_status(domain.OrderNotFound("o-1"))))
    assert isinstance(error, OrderNotFound)
    assert error.resource_name == "orders/o-1"
    assert error.reason == "ORDER_NOT_FOUND"


def test_not_cancellable_is_a_failed_precondition() -> None:
    error = from_rpc_error(_rpc_error(to_status(domain.OrderNotCancellable("o-1", domain.OrderState.PAID))))
    assert isinstance(error, OrderNotCancellable)
    assert isinstance(error, FailedPrecondition)
    assert error.violations == ("orders/o-1 is PAID; only a CREATED order can be cancelled",)


def test_reused_idempotency_key_is_a_conflict() -> None:
    error = from_rpc_error(_rpc_error(to_status(domain.IdempotencyKeyReused())))
    assert isinstance(error, IdempotencyConflict)
    assert error.reason == "IDEMPOTENCY_KEY_REUSED"


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (grpc.StatusCode.UNAVAILABLE, Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceeded),
        (grpc.StatusCode.FAILED_PRECONDITION, FailedPrecondition),
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidOrder),
        (grpc.StatusCode.INTERNAL, OrdersError),
        (grpc.StatusCode.UNKNOWN, OrdersError),
    ],
)
def test_plain_statuses_without_details_still_map(code: grpc.StatusCode, kind: type[OrdersError]) -> None:
    error = from_rpc_error(grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "boom", None))
    assert type(error) is kind
    assert error.code is code
    assert error.message == "boom"
    assert error.reason == ""


def test_deadline_exceeded_is_also_a_timeout_error() -> None:
    assert isinstance(from_status(grpc.StatusCode.DEADLINE_EXCEEDED, ""), TimeoutError)


def test_undecodable_details_are_ignored() -> None:
    metadata = grpc.aio.Metadata(("grpc-status-details-bin", b"\xff\xff not a status"))
    error = from_rpc_error(grpc.aio.AioRpcError(grpc.StatusCode.NOT_FOUND, grpc.aio.Metadata(), metadata, "gone", None))
    assert isinstance(error, OrderNotFound)
    assert error.resource_name == ""


@pytest.mark.parametrize(
    ("field", "option"),
    [
        ("order.customer_id", "--customer"),
        ("order.payment_method", "--payment"),
        ("order.line_items", "--item"),
        ("order.line_items[1].quantity", "--item #2 (B:0:1) quantity"),
        ("order.line_items[0].sku", "--item #1 (A:1:2) sku"),
        ("order.line_items[0].unit_price", "--item #1 (A:1:2) price"),
        ("order.line_items[0].unit_price.nanos", "--item #1 (A:1:2) price"),
        ("order.line_items[0].unit_price.currency_code", "--currency"),
        ("order.line_items[7]", "--item #8"),
        ("something.else", "something.else"),
    ],
)
def test_cli_names_the_option_behind_each_field(field: str, option: str) -> None:
    assert _option(field, ["A:1:2", "B:0:1"]) == option


def test_cli_rejects_a_malformed_item_as_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["place", "--customer", "alice", "--item", "SKU-1:two:12.50"])
    assert exit_.value.code == 2
    assert "argument --item: 'SKU-1:two:12.50': quantity 'two' is not a whole number" in capsys.readouterr().err


def test_cli_documents_its_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    help_text = capsys.readouterr().out
    for code, meaning in EXIT_CODES.items():
        assert f"{code:>3}  {meaning}" in help_text
