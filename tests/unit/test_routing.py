"""Streams and subjects come from the contracts' messaging.v1 options, placeholders filled from the event."""

from __future__ import annotations

import pytest
from google.protobuf import empty_pb2
from orders.v1 import events_pb2 as order_events
from payments.v1 import events_pb2 as payment_events

from chassis.routing import StreamSpec, stream_of, subject_filter, subject_of, subjects_of


def test_an_event_is_published_on_the_subject_its_contract_declares() -> None:
    assert subject_of(order_events.OrderCreated(order_id="o-1")) == "orders.created"
    assert subject_of(payment_events.PaymentFailed()) == "payments.failed"


def test_a_placeholder_in_the_subject_is_filled_from_the_event() -> None:
    assert subject_of(order_events.OrderStateChanged(order_id="o-7")) == "orders.changed.o-7"
    assert subject_filter(order_events.OrderStateChanged) == "orders.changed.*"


def test_each_events_file_owns_one_stream_that_captures_its_subjects() -> None:
    assert stream_of(order_events.OrderCreated) == StreamSpec("ORDERS", ("orders.>",))
    assert stream_of(payment_events.PaymentSuccessful) == StreamSpec("PAYMENTS", ("payments.>",))


def test_a_consumer_of_several_events_gets_one_stream_and_a_filter_for_each() -> None:
    stream, subjects = subjects_of([payment_events.PaymentSuccessful, payment_events.PaymentFailed])
    assert (stream.name, subjects) == ("PAYMENTS", ["payments.succeeded", "payments.failed"])


def test_a_consumer_cannot_span_two_streams() -> None:
    with pytest.raises(ValueError, match="one stream"):
        subjects_of([order_events.OrderCreated, payment_events.PaymentFailed])


def test_a_message_without_routing_options_is_refused_with_its_name() -> None:
    with pytest.raises(LookupError, match=r"google\.protobuf\.Empty"):
        subject_of(empty_pb2.Empty())
