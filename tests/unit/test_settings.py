"""Settings come from the environment, with shared and per-service names, and bad values stop the start."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from notification_svc.config import NotificationSettings
from order_svc.config import OrderSettings
from payment_svc.config import PaymentSettings


def test_defaults_match_the_public_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "NATS_URL",
        "MONGODB_URI",
        "ORDER_SVC_GRPC_PORT",
        "PAYMENT_SVC_GRPC_PORT",
        "NOTIFICATION_SVC_GRPC_PORT",
    ):
        monkeypatch.delenv(name, raising=False)
    assert [s().grpc_port for s in (OrderSettings, PaymentSettings, NotificationSettings)] == [50051, 50052, 50053]
    assert OrderSettings().nats_url == "nats://127.0.0.1:4222"
    assert OrderSettings().mongodb_uri is None


def test_shared_names_are_unprefixed_and_own_names_are_prefixed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATS_URL", "nats://10.0.0.1:4222")
    monkeypatch.setenv("PAYMENT_SVC_DECLINE_RATE", "0.25")
    monkeypatch.setenv("GRPC_PORT", "1")  # not a setting of any service: ignored
    settings = PaymentSettings()
    assert (settings.nats_url, settings.decline_rate, settings.grpc_port) == ("nats://10.0.0.1:4222", 0.25, 50052)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ORDER_SVC_GRPC_PORT", "not-a-port"),
        ("ORDER_SVC_GRPC_PORT", "70000"),
        ("ORDER_SVC_MAX_DELIVER", "0"),
        ("LOG_LEVEL", "CHATTY"),
    ],
)
def test_a_bad_value_fails_fast(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        OrderSettings()


def test_a_decline_rate_outside_zero_to_one_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYMENT_SVC_DECLINE_RATE", "1.5")
    with pytest.raises(ValidationError):
        PaymentSettings()


def test_an_empty_seed_means_unseeded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYMENT_SVC_SEED", "")
    assert PaymentSettings().seed is None


def test_nats_credentials_are_shared_names_and_the_password_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATS_USER", "payment_svc")
    monkeypatch.setenv("NATS_PASSWORD", "s3cret-pw")
    settings = PaymentSettings()
    assert settings.nats_user == "payment_svc"
    assert settings.nats_password is not None
    assert settings.nats_password.get_secret_value() == "s3cret-pw"
    assert "s3cret-pw" not in repr(settings)
    assert "s3cret-pw" not in str(settings.model_dump())


@pytest.mark.parametrize(
    ("user", "declare", "expected"),
    [
        ("", "", True),  # a plain nats-server: the service declares its streams itself
        ("order_svc", "", False),  # a least-privilege user: the bootstrap declared them
        ("order_svc", "true", True),
        ("", "false", False),
    ],
)
def test_streams_are_declared_by_default_only_without_a_nats_user(
    monkeypatch: pytest.MonkeyPatch, user: str, declare: str, expected: bool
) -> None:
    monkeypatch.setenv("NATS_USER", user)
    monkeypatch.setenv("NATS_DECLARE_STREAMS", declare)
    settings = OrderSettings()
    assert settings.declares_streams is expected
    assert (settings.nats_user, settings.nats_declare_streams is None) == (user or None, declare == "")


def test_the_ack_wait_is_a_setting_of_each_service_and_a_charge_must_fit_in_it(monkeypatch: pytest.MonkeyPatch) -> None:
    assert PaymentSettings().ack_wait_seconds == 30.0
    monkeypatch.setenv("PAYMENT_SVC_ACK_WAIT_SECONDS", "5")
    monkeypatch.setenv("PAYMENT_SVC_LATENCY_MS", "200")
    assert PaymentSettings().ack_wait_seconds == 5.0
    assert OrderSettings().ack_wait_seconds == 30.0  # another service's name: not this one's
    monkeypatch.setenv("PAYMENT_SVC_LATENCY_MS", "3000")  # longer than half the ack wait: redelivered mid-charge
    with pytest.raises(ValidationError, match="PAYMENT_SVC_ACK_WAIT_SECONDS"):
        PaymentSettings()
    monkeypatch.setenv("ORDER_SVC_ACK_WAIT_SECONDS", "0.5")
    with pytest.raises(ValidationError):
        OrderSettings()
