"""MongoDB at start: its URI is shown without the password, and an unreachable server is one short line."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from pymongo.errors import OperationFailure, ServerSelectionTimeoutError

import chassis.mongo
from chassis.mongo import MongoUnavailable, check_reachable, connect, redact_uri
from order_svc.config import OrderSettings


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("mongodb://127.0.0.1:27017", "mongodb://127.0.0.1:27017"),
        ("mongodb://alice:s3cret@127.0.0.1:27017/orders", "mongodb://alice:***@127.0.0.1:27017/orders"),
        (
            "mongodb://alice:s3cret@db1,db2,db3/?replicaSet=rs0&authSource=admin",
            "mongodb://alice:***@db1,db2,db3/?replicaSet=rs0&authSource=admin",
        ),
        ("mongodb+srv://alice:p%40ss@cluster0.example.net/", "mongodb+srv://alice:***@cluster0.example.net/"),
        ("mongodb://alice:p@ss:w/rd@db:27017", "mongodb://alice:***@db:27017"),  # unescaped: still all hidden
        ("mongodb://:s3cret@db", "mongodb://:***@db"),
        ("mongodb://CN=client@db/?authMechanism=MONGODB-X509", "mongodb://CN=client@db/?authMechanism=MONGODB-X509"),
        (
            "mongodb://db/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:tok3n",
            "mongodb://db/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:***",
        ),
    ],
)
def test_redact_uri_hides_the_password_and_keeps_the_rest(uri: str, shown: str) -> None:
    assert redact_uri(uri) == shown


def test_the_server_selection_timeout_is_a_shared_setting_of_5000_ms_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MONGODB_SERVER_SELECTION_TIMEOUT_MS", raising=False)
    assert OrderSettings().mongodb_server_selection_timeout_ms == 5000
    monkeypatch.setenv("MONGODB_SERVER_SELECTION_TIMEOUT_MS", "750")
    assert OrderSettings().mongodb_server_selection_timeout_ms == 750


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_a_server_selection_timeout_that_is_not_a_positive_integer_fails_fast(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("MONGODB_SERVER_SELECTION_TIMEOUT_MS", value)
    with pytest.raises(ValidationError):
        OrderSettings()


async def test_connect_hands_the_server_selection_timeout_to_the_client() -> None:
    client = connect("mongodb://127.0.0.1:27017", "test", 750)
    try:
        assert client.options.server_selection_timeout == 0.75
    finally:
        await client.close()


class _FailingAdmin:
    def __init__(self, error: Exception) -> None:
        self._error = error

    async def command(self, name: str) -> dict[str, Any]:
        raise self._error


class _FailingClient:
    def __init__(self, error: Exception) -> None:
        self.admin = _FailingAdmin(error)
        self.closed = False

    async def close(self) -> None:
        self.closed = True


PYMONGO_TIMEOUT_TEXT = (
    "db:27017: [Errno 111] Connection refused (configured timeouts: socketTimeoutMS: 20000.0ms, "
    "connectTimeoutMS: 20000.0ms), Timeout: 0.5s, Topology Description: <TopologyDescription id: 1, "
    "topology_type: Unknown, servers: [<ServerDescription ('db', 27017) server_type: Unknown, rtt: None, "
    "error=AutoReconnect('db:27017: [Errno 111] Connection refused')>]>"
)


async def test_an_unreachable_mongodb_is_one_short_line_naming_the_redacted_uri(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = _FailingClient(ServerSelectionTimeoutError(PYMONGO_TIMEOUT_TEXT))
    monkeypatch.setattr(chassis.mongo, "connect", lambda *_args: fake)
    with pytest.raises(MongoUnavailable) as caught:
        await check_reachable("mongodb://alice:s3cret@db:27017", "test", 500)
    assert str(caught.value) == (
        "cannot reach MongoDB at mongodb://alice:***@db:27017 within 0.5 s: db:27017: [Errno 111] Connection refused"
    )
    assert caught.value.__suppress_context__  # raised `from None`: no pymongo traceback chained
    assert fake.closed


async def test_a_mongodb_that_refuses_the_credentials_is_one_line_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = _FailingClient(OperationFailure("Authentication failed.", code=18))
    monkeypatch.setattr(chassis.mongo, "connect", lambda *_args: fake)
    with pytest.raises(
        MongoUnavailable, match=r"^cannot use MongoDB at mongodb://alice:\*\*\*@db: Authentication failed\.$"
    ):
        await check_reachable("mongodb://alice:s3cret@db", "test", 500)
    assert fake.closed
