"""NATS least privilege: a user per service with allow-lists derived from the contracts, and the stream bootstrap."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import nats
import nats.errors
from google.protobuf.message import Message
from orders.v1 import events_pb2 as order_events
from payments.v1 import events_pb2 as payment_events
from pydantic import SecretStr

from chassis.bus import declare_streams, inbox_prefix, redact_url, server_urls
from chassis.delivery import DEAD_LETTER_STREAM, DEAD_LETTER_SUBJECTS, dead_letter_subject
from chassis.routing import StreamSpec, durable_name, stream_of, subject_filter

__all__ = [
    "ADMIN",
    "BOOTSTRAP",
    "COMPOSE_CONFIG",
    "EX_NOPERM",
    "EX_UNAVAILABLE",
    "GRANTS",
    "BootstrapFailed",
    "Credentials",
    "EnvRef",
    "Grant",
    "bootstrap",
    "bootstrap_permissions",
    "compose_passwords",
    "contract_stream",
    "events_of",
    "main",
    "render",
    "service_permissions",
    "streams",
    "write_private",
]

ROOT = Path(__file__).resolve().parents[1]
#: The users file docker-compose mounts into its nats-server (passwords are ``$NATS_PASSWORD_<USER>``).
COMPOSE_CONFIG = ROOT / "nats-users.conf"
#: Every right: operator tooling (the dead-letter CLI, tests). Never a service; not in docker-compose.
ADMIN = "admin"
#: Declares the streams, and may do nothing else.
BOOTSTRAP = "bootstrap"
EX_UNAVAILABLE = 69  # sysexits.h: NATS is unavailable
EX_NOPERM = 77  # sysexits.h: the user lacks the credentials or the rights

JS_API = "$JS.API"
JS_ACK = "$JS.ACK"


@dataclass(frozen=True)
class Grant:
    """What one service may do on NATS, said in contract terms; the subjects are derived from the contracts."""

    #: Contract files (``events_pb2`` modules) whose events the service publishes.
    publishes: tuple[ModuleType, ...] = ()
    #: Contract files whose stream the service reads, with its own durable (``chassis.routing.durable_name``).
    consumes: tuple[ModuleType, ...] = ()
    #: Events the service also follows on plain NATS (no JetStream): WatchOrder's change feed.
    follows: tuple[type[Message], ...] = ()


#: The one table of who may do what: service → the events it publishes and the streams it consumes.
GRANTS: dict[str, Grant] = {
    "order_svc": Grant(
        publishes=(order_events,), consumes=(payment_events,), follows=(order_events.OrderStateChanged,)
    ),
    "payment_svc": Grant(publishes=(payment_events,), consumes=(order_events,)),
    "notification_svc": Grant(consumes=(order_events,)),
}


def events_of(contract: ModuleType) -> list[type[Message]]:
    """The events a contract file declares: its messages that carry a ``(messaging.v1.subject)`` option."""
    found: list[type[Message]] = []
    for name in contract.DESCRIPTOR.message_types_by_name:
        event: type[Message] = getattr(contract, name)
        try:
            subject_filter(event)
        except LookupError:  # a message used inside events, not an event
            continue
        found.append(event)
    if not found:
        raise LookupError(f"{contract.DESCRIPTOR.name} declares no event")
    return found


def contract_stream(contract: ModuleType) -> StreamSpec:
    """The stream a contract file owns (its ``(messaging.v1.stream)`` option)."""
    return stream_of(events_of(contract)[0])


def streams() -> list[StreamSpec]:
    """Every stream of the system: those of the contracts in ``GRANTS``, then the dead letters."""
    found = {
        contract_stream(contract): None for grant in GRANTS.values() for contract in (*grant.publishes, *grant.consumes)
    }
    return [*found, StreamSpec(DEAD_LETTER_STREAM, DEAD_LETTER_SUBJECTS)]


def service_permissions(service: str, grant: Grant) -> dict[str, Any]:
    """``service``'s allow-lists: its own events, its own durables, its own inbox; everything else is denied.

    Publish: the subject of every event its contract files declare; per durable it consumes with,
    the JetStream API calls on that durable only (info, create/update with or without a filter
    subject in the API subject, pull), its acks and its dead letters; a consuming service may also
    read the dead-letter stream's info (a read-only count, for its ``consumer_dead_letters`` gauge),
    never its messages. Subscribe: its own inbox prefix (``chassis.bus.inbox_prefix``; replies and
    pulled messages arrive there) and the events it follows.
    """
    publish = [subject_filter(event) for contract in grant.publishes for event in events_of(contract)]
    subscribe = [f"{inbox_prefix(service)}.>", *(subject_filter(event) for event in grant.follows)]
    if grant.consumes:
        publish.append(f"{JS_API}.STREAM.INFO.{DEAD_LETTER_STREAM}")
    for contract in grant.consumes:
        stream = contract_stream(contract).name
        durable = durable_name(service, contract_stream(contract))
        publish += [
            f"{JS_API}.CONSUMER.INFO.{stream}.{durable}",
            f"{JS_API}.CONSUMER.CREATE.{stream}.{durable}",
            f"{JS_API}.CONSUMER.CREATE.{stream}.{durable}.>",
            f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{durable}",
            f"{JS_ACK}.{stream}.{durable}.>",
            dead_letter_subject(durable),
        ]
    return {"publish": {"allow": publish}, "subscribe": {"allow": subscribe}}


def bootstrap_permissions() -> dict[str, Any]:
    """The bootstrap user's allow-lists: create and update the system's streams, read its own inbox."""
    publish = [f"{JS_API}.STREAM.{verb}.{s.name}" for s in streams() for verb in ("CREATE", "UPDATE")]
    return {"publish": {"allow": publish}, "subscribe": {"allow": [f"{inbox_prefix(BOOTSTRAP)}.>"]}}


@dataclass(frozen=True)
class EnvRef:
    """A password the nats-server reads from its environment (``$NAME`` in its config)."""

    name: str


def compose_passwords() -> dict[str, EnvRef]:
    """docker-compose's passwords: ``$NATS_PASSWORD_<USER>`` for the bootstrap and each service (no admin)."""
    return {user: EnvRef(f"NATS_PASSWORD_{user.upper()}") for user in (BOOTSTRAP, *GRANTS)}


def render(passwords: Mapping[str, str | SecretStr | EnvRef]) -> str:
    """The nats-server ``authorization`` block for these users (``ADMIN`` only when it has a password here).

    Every user of ``GRANTS`` and ``BOOTSTRAP`` needs a password; each password is a literal or an
    ``EnvRef``.
    """
    marks: dict[str, str] = {}

    def password(user: str) -> str:
        value = passwords[user]
        if isinstance(value, EnvRef):
            mark = f"\x00{value.name}"
            marks[json.dumps(mark)] = f"${value.name}"
            return mark
        return value.get_secret_value() if isinstance(value, SecretStr) else value

    users: list[dict[str, Any]] = []
    if ADMIN in passwords:
        users.append({"user": ADMIN, "password": password(ADMIN)})
    users.append({"user": BOOTSTRAP, "password": password(BOOTSTRAP), "permissions": bootstrap_permissions()})
    for service, grant in GRANTS.items():
        users.append(
            {"user": service, "password": password(service), "permissions": service_permissions(service, grant)}
        )
    text = json.dumps({"users": users}, indent=2)
    for quoted, reference in marks.items():
        text = text.replace(quoted, reference)
    return (
        "# NATS users of the order saga: one per service, with allow-lists derived from the contracts.\n"
        "# Generated by devstack/natsauth.py (GRANTS); do not edit: `python -m devstack.natsauth config`.\n"
        f"authorization: {text}\n"
    )


@dataclass(frozen=True)
class Credentials:
    """Random passwords for one run: the admin, the bootstrap and each service (``repr`` shows none)."""

    passwords: Mapping[str, SecretStr] = field(repr=False)

    @classmethod
    def generate(cls) -> Credentials:
        users = (ADMIN, BOOTSTRAP, *GRANTS)
        return cls({user: SecretStr(secrets.token_urlsafe(24)) for user in users})

    def password(self, user: str) -> str:
        return self.passwords[user].get_secret_value()


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` readable by its owner only (mode 0600, also when the file existed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    return path


class BootstrapFailed(RuntimeError):
    """The streams could not be declared; ``exit_code`` says why (no NATS, or no rights)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


async def bootstrap(
    url: str, user: str | None = None, password: str | None = None, *, timeout: float = 30.0, replicas: int = 1
) -> list[StreamSpec]:
    """Declare every stream (``streams()``) as ``user``; retries until NATS answers, for up to ``timeout`` s.

    Idempotent: an existing stream is updated to the configuration of ``chassis.bus.stream_config``.
    Wrong credentials or missing rights fail at once (``BootstrapFailed`` with ``EX_NOPERM``,
    naming the server's reason), no NATS within ``timeout`` with ``EX_UNAVAILABLE``.
    """
    wanted = streams()
    deadline = time.monotonic() + timeout
    reasons: list[Exception] = []

    async def keep(error: Exception) -> None:  # the server's reason for a refusal (e.g. a permissions violation)
        reasons.append(error)

    while True:
        reasons.clear()
        try:
            nc = await nats.connect(
                server_urls(url),
                user=user or None,
                password=password or None,
                inbox_prefix=inbox_prefix(user),
                connect_timeout=2,
                allow_reconnect=False,
                max_reconnect_attempts=0,
                error_cb=keep,
            )
            try:
                await declare_streams(nc.jetstream(timeout=5), wanted, replicas)
            finally:
                await nc.close()
            return wanted
        except nats.errors.AuthorizationError as error:
            raise BootstrapFailed(f"NATS at {redact_url(url)} refused user {user!r}: {error}", EX_NOPERM) from None
        except (OSError, nats.errors.Error, TimeoutError) as error:
            denied = [r for r in reasons if "permissions violation" in str(r).lower()]
            if denied:
                raise BootstrapFailed(f"user {user!r} may not declare the streams: {denied[0]}", EX_NOPERM) from None
            if time.monotonic() > deadline:
                cause = reasons[-1] if reasons else error
                raise BootstrapFailed(
                    f"cannot declare the streams on {redact_url(url)}: {cause!r}", EX_UNAVAILABLE
                ) from None
        await asyncio.sleep(0.2)  # NATS (or its JetStream) is not up yet: ask again


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.natsauth", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    boot = sub.add_parser(
        "bootstrap",
        help="declare the streams (ORDERS, PAYMENTS, DEAD_LETTERS) before the services need them",
        description="The password comes from NATS_PASSWORD (never a command-line argument).",
    )
    boot.add_argument("--nats-url", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    boot.add_argument("--user", default=os.environ.get("NATS_USER", BOOTSTRAP))
    boot.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for NATS")
    boot.add_argument(
        "--replicas",
        type=int,
        default=int(os.environ.get("NATS_STREAM_REPLICAS", "1")),
        help="servers each stream is kept on (3 on a 3-node cluster; env NATS_STREAM_REPLICAS)",
    )
    config = sub.add_parser("config", help="print docker-compose's nats-users.conf (passwords from $NATS_PASSWORD_*)")
    config.add_argument("--check", action="store_true", help=f"fail if {COMPOSE_CONFIG.name} is not up to date")
    config.add_argument("--write", action="store_true", help=f"write {COMPOSE_CONFIG.name}")
    args = parser.parse_args(argv)
    if args.command == "config":
        text = render(compose_passwords())
        if args.check:
            current = COMPOSE_CONFIG.read_text() if COMPOSE_CONFIG.is_file() else ""
            if current != text:
                _say(f"{COMPOSE_CONFIG.name} is stale: run `python -m devstack.natsauth config --write`")
                return 1
            return 0
        if args.write:
            COMPOSE_CONFIG.write_text(text)
            return 0
        sys.stdout.write(text)
        return 0
    try:
        declared = asyncio.run(
            bootstrap(
                args.nats_url,
                args.user,
                os.environ.get("NATS_PASSWORD"),
                timeout=args.timeout,
                replicas=args.replicas,
            )
        )
    except BootstrapFailed as error:
        _say(str(error))
        return error.exit_code
    print(f"streams declared on {redact_url(args.nats_url)}: {', '.join(s.name for s in declared)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
