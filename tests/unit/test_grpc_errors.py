"""Domain errors map to gRPC codes with google.rpc details, in one place."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2

from chassis.errors import FieldViolation, InvalidArgument
from chassis.grpc_errors import to_status
from order_svc.domain import IdempotencyKeyReused, OrderNotCancellable, OrderNotFound, OrderState


def details(status: grpc.Status) -> dict[str, object]:
    (_, raw), *_ = [m for m in status.trailing_metadata if m[0] == "grpc-status-details-bin"]
    found: dict[str, object] = {}
    for any_detail in status_pb2.Status.FromString(raw).details:
        for cls in (
            error_details_pb2.ErrorInfo,
            error_details_pb2.BadRequest,
            error_details_pb2.ResourceInfo,
            error_details_pb2.PreconditionFailure,
        ):
            message = cls()
            if any_detail.Unpack(message):
                found[cls.__name__] = message
    return found


def test_invalid_argument_lists_every_field_violation() -> None:
    status = to_status(InvalidArgument([FieldViolation("a", "x"), FieldViolation("b.c[0]", "y")]))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    bad = details(status)["BadRequest"]
    assert [(v.field, v.description) for v in bad.field_violations] == [("a", "x"), ("b.c[0]", "y")]  # type: ignore[attr-defined]


def test_not_found_names_the_resource() -> None:
    status = to_status(OrderNotFound("o-1"))
    assert status.code == grpc.StatusCode.NOT_FOUND
    found = details(status)
    assert found["ResourceInfo"].resource_name == "orders/o-1"  # type: ignore[attr-defined]
    assert found["ErrorInfo"].reason == "ORDER_NOT_FOUND"  # type: ignore[attr-defined]


def test_precondition_and_conflict_codes() -> None:
    not_cancellable = to_status(OrderNotCancellable("o-1", OrderState.PAID))
    assert not_cancellable.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "PreconditionFailure" in details(not_cancellable)
    assert to_status(IdempotencyKeyReused()).code == grpc.StatusCode.ALREADY_EXISTS
