"""NATS permissions are derived from the contracts: each service its own events, durables and inbox, nothing more."""

from __future__ import annotations

import re
from typing import Any

from orders.v1 import events_pb2 as order_events
from payments.v1 import events_pb2 as payment_events

from chassis.bus import inbox_prefix, redact_url
from chassis.routing import StreamSpec, durable_name, subject_filter
from devstack.natsauth import (
    ADMIN,
    BOOTSTRAP,
    GRANTS,
    Credentials,
    EnvRef,
    bootstrap_permissions,
    compose_passwords,
    contract_stream,
    events_of,
    render,
    service_permissions,
    streams,
)
from devstack.stack import SERVICES


def allowed(service: str) -> tuple[list[str], list[str]]:
    permissions: dict[str, Any] = service_permissions(service, GRANTS[service])
    return permissions["publish"]["allow"], permissions["subscribe"]["allow"]


def test_every_service_of_the_stack_has_a_grant_and_its_durable_is_named_by_the_one_rule() -> None:
    assert set(GRANTS) == set(SERVICES)
    durables = {
        service: [durable_name(service, contract_stream(contract)) for contract in grant.consumes]
        for service, grant in GRANTS.items()
    }
    assert durables == {
        "order_svc": ["order-svc-payments"],
        "payment_svc": ["payment-svc-orders"],
        "notification_svc": ["notification-svc-orders"],
    }
    assert durable_name("order_svc", StreamSpec("PAYMENTS", ("payments.>",))) == "order-svc-payments"


def test_each_service_publishes_exactly_the_events_of_its_own_contract() -> None:
    order_subjects = {subject_filter(e) for e in events_of(order_events)}
    payment_subjects = {subject_filter(e) for e in events_of(payment_events)}
    assert order_subjects == {"orders.created", "orders.cancelled", "orders.refund_requested", "orders.changed.*"}
    assert payment_subjects == {"payments.succeeded", "payments.failed", "payments.voided", "payments.refunded"}
    events = {service: {s for s in allowed(service)[0] if not s.startswith(("$JS.", "dlq."))} for service in GRANTS}
    assert events == {"order_svc": order_subjects, "payment_svc": payment_subjects, "notification_svc": set()}


def test_a_service_may_use_its_own_durable_only_its_acks_and_its_dead_letters() -> None:
    publish, _ = allowed("payment_svc")
    assert sorted(s for s in publish if s.startswith(("$JS.", "dlq."))) == sorted(
        [
            "$JS.API.CONSUMER.INFO.ORDERS.payment-svc-orders",
            "$JS.API.CONSUMER.CREATE.ORDERS.payment-svc-orders",
            "$JS.API.CONSUMER.CREATE.ORDERS.payment-svc-orders.>",
            "$JS.API.CONSUMER.MSG.NEXT.ORDERS.payment-svc-orders",
            "$JS.ACK.ORDERS.payment-svc-orders.>",
            "dlq.payment-svc-orders",
        ]
    )
    for service in GRANTS:
        publish, _ = allowed(service)
        assert not any(".STREAM." in s for s in publish), f"{service} may not create or change streams"
        others = [durable_name(o, s) for o in GRANTS if o != service for s in streams()]
        assert not any(d in s for s in publish for d in others), f"{service} may touch another's durable"


def test_a_service_subscribes_to_its_own_inbox_only_and_order_svc_to_order_changes_too() -> None:
    assert {service: allowed(service)[1] for service in GRANTS} == {
        "order_svc": ["_INBOX_order_svc.>", "orders.changed.*"],
        "payment_svc": ["_INBOX_payment_svc.>"],
        "notification_svc": ["_INBOX_notification_svc.>"],
    }
    assert inbox_prefix("payment_svc") == "_INBOX_payment_svc"
    assert inbox_prefix(None) == "_INBOX"


def test_the_bootstrap_may_create_and_update_the_systems_streams_and_nothing_else() -> None:
    assert [s.name for s in streams()] == ["ORDERS", "PAYMENTS", "DEAD_LETTERS"]
    permissions = bootstrap_permissions()
    names = ("ORDERS", "PAYMENTS", "DEAD_LETTERS")
    expected = [f"$JS.API.STREAM.{verb}.{name}" for name in names for verb in ("CREATE", "UPDATE")]
    assert sorted(permissions["publish"]["allow"]) == sorted(expected)
    assert permissions["subscribe"]["allow"] == ["_INBOX_bootstrap.>"]


def test_render_writes_literal_passwords_or_environment_references_and_the_admin_only_when_given() -> None:
    credentials = Credentials.generate()
    text = render(credentials.passwords)
    for user in (ADMIN, BOOTSTRAP, *GRANTS):
        assert f'"user": "{user}"' in text
        assert f'"password": "{credentials.password(user)}"' in text
    assert "permissions" not in text.split('"user": "admin"')[1].split("}")[0], "the admin has every right"
    compose = render(compose_passwords())
    assert '"user": "admin"' not in compose
    assert re.findall(r'"password": (\S+),', compose) == [
        "$NATS_PASSWORD_BOOTSTRAP",
        "$NATS_PASSWORD_ORDER_SVC",
        "$NATS_PASSWORD_PAYMENT_SVC",
        "$NATS_PASSWORD_NOTIFICATION_SVC",
    ]
    assert compose_passwords()["order_svc"] == EnvRef("NATS_PASSWORD_ORDER_SVC")


def test_passwords_never_show_in_a_repr_or_a_logged_url() -> None:
    credentials = Credentials.generate()
    assert credentials.password("order_svc") not in repr(credentials)
    assert len({credentials.password(user) for user in (ADMIN, BOOTSTRAP, *GRANTS)}) == 2 + len(GRANTS)
    assert redact_url("nats://admin:s3cret@127.0.0.1:4222") == "nats://admin:***@127.0.0.1:4222"
    assert redact_url("nats://127.0.0.1:4222") == "nats://127.0.0.1:4222"
