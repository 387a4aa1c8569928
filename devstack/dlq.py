"""Dead letters: list and replay the messages consumers gave up on (``python -m devstack.dlq``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

import nats
from dotenv import dotenv_values
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import NotFoundError
from rich.console import Console
from rich.table import Table

from chassis.bus import inbox_prefix, redact_url, server_urls
from chassis.delivery import DEAD_LETTER_STREAM, EVENT_ID_HEADER, MSG_ID_HEADER

__all__ = [
    "EX_NOPERM",
    "EX_UNAVAILABLE",
    "DeadLetter",
    "NatsLogin",
    "NoDeadLetterStream",
    "list_dead_letters",
    "main",
    "replay",
]

EX_UNAVAILABLE = 69  # sysexits.h: a service this command needs (NATS) is unavailable
EX_NOPERM = 77  # sysexits.h: NATS refused the user, or the user may not do this
DEFAULT_URL = "nats://127.0.0.1:4222"
NO_STREAM = f"no dead-letter stream {DEAD_LETTER_STREAM} yet: nothing was ever dead-lettered"
EMPTY = f"no dead letters in {DEAD_LETTER_STREAM}"


class NoDeadLetterStream(LookupError):
    """The dead-letter stream does not exist: no consumer has parked a message on this NATS yet."""


@dataclass(frozen=True)
class DeadLetter:
    """One parked message and why it was parked."""

    sequence: int
    consumer: str
    subject: str
    event_type: str
    event_id: str
    reason: str
    headers: dict[str, str]
    data: bytes


async def list_dead_letters(js: nats.js.JetStreamContext) -> list[DeadLetter]:
    """Every message in the dead-letter stream, oldest first; none when it is empty.

    Raises ``NoDeadLetterStream`` when the stream does not exist.
    """
    try:
        info = await js.stream_info(DEAD_LETTER_STREAM)
    except NotFoundError:
        raise NoDeadLetterStream(NO_STREAM) from None
    letters: list[DeadLetter] = []
    if not info.state.messages:  # an empty stream reports first_seq 0, which is no message's sequence
        return letters
    seq = max(info.state.first_seq, 1)
    while seq <= info.state.last_seq:
        try:  # the first message at or after seq: replayed (deleted) ones leave gaps
            msg = await js.get_msg(DEAD_LETTER_STREAM, seq, subject=">", next=True)
        except NotFoundError:
            break  # none left (replayed meanwhile)
        found = msg.seq or seq
        seq = found + 1
        headers = {str(k): str(v) for k, v in (msg.headers or {}).items()}
        letters.append(
            DeadLetter(
                sequence=found,
                consumer=headers.get("Dlq-Consumer", ""),
                subject=headers.get("Dlq-Original-Subject", ""),
                event_type=headers.get("Event-Type", ""),
                event_id=headers.get(EVENT_ID_HEADER, ""),
                reason=headers.get("Dlq-Reason", ""),
                headers=headers,
                data=msg.data or b"",
            )
        )
    return letters


async def replay(js: nats.js.JetStreamContext, letter: DeadLetter) -> None:
    """Publish the message again on its original subject, then remove it from the dead letters.

    It gets a fresh ``Nats-Msg-Id`` (the original may still sit in the dedup window); consumers are
    idempotent, so every consumer of that subject may safely see it again.
    """
    headers = {k: v for k, v in letter.headers.items() if not k.startswith("Dlq-")}
    headers[MSG_ID_HEADER] = f"replay:{letter.sequence}:{letter.event_id}"
    headers["Replayed-From-Dlq"] = str(letter.sequence)
    await js.publish(letter.subject, letter.data, headers=headers, timeout=5.0)
    await js.delete_msg(DEAD_LETTER_STREAM, letter.sequence)


def _say(message: str) -> None:
    """One plain line on stderr (no rich wrapping: a long URL stays on one line)."""
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class NatsLogin:
    """Where and as whom to connect; ``repr`` shows no password.

    Replaying publishes on other services' subjects, so this needs an operator identity: the
    stack's ``admin`` (``make up`` writes it to ``$STACK_DIR/nats/admin.env``), not a service's.
    """

    url: str
    user: str | None = None
    password: str | None = None

    def __repr__(self) -> str:
        return f"NatsLogin(url={redact_url(self.url)!r}, user={self.user!r})"

    @classmethod
    def resolve(cls, args: argparse.Namespace, environ: Mapping[str, str]) -> NatsLogin:
        """The options win, then ``--env-file``, then ``NATS_URL``, ``NATS_USER``, ``NATS_PASSWORD`` (environment)."""
        found = {**environ, **(_env_file(args.env_file) if args.env_file else {})}
        url = args.nats_url or found.get("NATS_URL") or DEFAULT_URL
        if urlsplit(url).username:  # a URL with its own credentials: only the options may override them
            found = {}
        return cls(
            url=url,
            user=args.user or found.get("NATS_USER") or None,
            password=args.password or found.get("NATS_PASSWORD") or None,
        )


def _env_file(path: str) -> dict[str, str]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no env file {path}")
    return {key: value for key, value in dotenv_values(path).items() if value is not None}


class _Refused(PermissionError):
    """NATS refused the login, or the user's permissions do not allow what the command does."""


async def _connect(login: NatsLogin, errors: list[Exception]) -> NatsClient:
    """A connection, after at most two quick attempts; raises ``ConnectionError`` with the last cause.

    The errors the server reports later (e.g. a permissions violation) are appended to ``errors``.
    """

    async def keep_error(error: Exception) -> None:  # instead of nats-py's default: a logged traceback
        errors.append(error)

    try:
        return await nats.connect(
            server_urls(login.url),  # one server, or every server of a cluster
            user=login.user,
            password=login.password,
            inbox_prefix=inbox_prefix(login.user),  # the only replies a least-privilege user may subscribe to
            connect_timeout=5,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.5,
            allow_reconnect=False,
            error_cb=keep_error,
        )
    except (NatsError, OSError, TimeoutError, ValueError) as error:  # NoServersError is a NatsError
        cause = errors[-1] if errors else error
        if "authorization violation" in str(cause).lower() or isinstance(cause, nats.errors.AuthorizationError):
            raise _Refused(f"refused user {login.user or '(none)'}: authorization violation") from None
        raise ConnectionError(str(cause) or type(cause).__name__) from None


async def _main(args: argparse.Namespace, login: NatsLogin) -> int:
    url = redact_url(login.url)
    errors: list[Exception] = []
    try:
        nc = await _connect(login, errors)
    except _Refused as error:
        _say(f"NATS at {url} {error} (see --user, --password, --env-file)")
        return EX_NOPERM
    except ConnectionError as error:
        _say(f"cannot reach NATS at {url}: {error}")
        return EX_UNAVAILABLE
    try:
        return await _command(nc.jetstream(), args)
    except NoRespondersError:
        _say(f"NATS at {url} has no JetStream (start nats-server with -js)")
        return EX_UNAVAILABLE
    except (NatsTimeoutError, TimeoutError):
        denied = [e for e in errors if "permissions violation" in str(e).lower()]
        if denied:  # a refused request is never answered: the server's reason came to the error callback
            _say(f"user {login.user or '(none)'} may not do this on NATS at {url}: {denied[0]}")
            return EX_NOPERM
        _say(f"NATS at {url} did not answer in time")
        return EX_UNAVAILABLE
    finally:
        await nc.close()


async def _command(js: nats.js.JetStreamContext, args: argparse.Namespace) -> int:
    try:
        letters = await list_dead_letters(js)
    except NoDeadLetterStream:
        letters, none_message = [], NO_STREAM
    else:
        none_message = EMPTY
    if args.command == "list":
        if args.json:
            print(json.dumps([{**asdict(d), "data": d.data.hex()} for d in letters], indent=2))
            if not letters:
                _say(none_message)
            return 0
        if not letters:
            print(none_message)
            return 0
        table = Table(title=f"{len(letters)} dead letter(s) in {DEAD_LETTER_STREAM}")
        for column in ("seq", "consumer", "subject", "event type", "event id", "reason"):
            table.add_column(column)
        for d in letters:
            table.add_row(str(d.sequence), d.consumer, d.subject, d.event_type, d.event_id, d.reason)
        Console().print(table)
        return 0
    if args.all and not letters:
        print(f"nothing to replay: {none_message}")
        return 0
    wanted = set(args.sequences)
    chosen = letters if args.all else [d for d in letters if d.sequence in wanted]
    missing = sorted(wanted - {d.sequence for d in chosen})
    if missing:
        numbers = ", ".join(f"#{n}" for n in missing)
        hint = "`list` shows the ones there are" if letters else none_message
        _say(f"no dead letter {numbers} in {DEAD_LETTER_STREAM}; {hint}")
        return 1
    for letter in chosen:
        await replay(js, letter)
        print(f"replayed #{letter.sequence} → {letter.subject} ({letter.event_type} {letter.event_id})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.dlq",
        description=__doc__,
        epilog="Replaying publishes on other services' subjects: connect as the stack's admin, e.g. "
        "--env-file var/nats/admin.env after `make up` (NATS_URL, NATS_USER, NATS_PASSWORD).",
    )
    parser.add_argument("--nats-url", default=None, help=f"default: $NATS_URL, else {DEFAULT_URL}")
    parser.add_argument("--user", default=None, help="NATS user (default: $NATS_USER)")
    parser.add_argument(
        "--password",
        default=None,
        help="its password (default: $NATS_PASSWORD; prefer that or --env-file: arguments are visible to `ps`)",
    )
    parser.add_argument("--env-file", default=None, help="a .env file with NATS_URL, NATS_USER, NATS_PASSWORD")
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="show the dead letters")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    replaying = sub.add_parser("replay", help="publish dead letters again on their original subject")
    replaying.add_argument("sequences", nargs="*", type=int, help="dead-letter sequence numbers")
    replaying.add_argument("--all", action="store_true", help="replay every dead letter")
    args = parser.parse_args(argv)
    if args.command == "replay" and not args.all and not args.sequences:
        parser.error("replay needs sequence numbers or --all")
    try:
        login = NatsLogin.resolve(args, os.environ)
    except FileNotFoundError as error:
        parser.error(str(error))
    return asyncio.run(_main(args, login))


if __name__ == "__main__":
    sys.exit(main())
