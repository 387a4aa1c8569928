"""Dead letters: list and replay the messages consumers gave up on (``python -m devstack.dlq``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict, dataclass

import nats
from nats.js.errors import NotFoundError
from rich.console import Console
from rich.table import Table

from chassis.delivery import DEAD_LETTER_STREAM, EVENT_ID_HEADER, MSG_ID_HEADER

__all__ = ["DeadLetter", "list_dead_letters", "main", "replay"]


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
    """Every message in the dead-letter stream, oldest first."""
    info = await js.stream_info(DEAD_LETTER_STREAM)
    letters = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            msg = await js.get_msg(DEAD_LETTER_STREAM, seq)
        except NotFoundError:
            continue  # replayed (deleted) already
        headers = {str(k): str(v) for k, v in (msg.headers or {}).items()}
        letters.append(
            DeadLetter(
                sequence=seq,
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


async def _main(args: argparse.Namespace) -> int:
    console = Console()
    nc = await nats.connect(args.nats_url, connect_timeout=5, max_reconnect_attempts=1)
    try:
        js = nc.jetstream()
        letters = await list_dead_letters(js)
        if args.command == "list":
            if args.json:
                print(json.dumps([{**asdict(d), "data": d.data.hex()} for d in letters], indent=2))
                return 0
            table = Table(title=f"{len(letters)} dead letter(s) in {DEAD_LETTER_STREAM}")
            for column in ("seq", "consumer", "subject", "event type", "event id", "reason"):
                table.add_column(column)
            for d in letters:
                table.add_row(str(d.sequence), d.consumer, d.subject, d.event_type, d.event_id, d.reason)
            console.print(table)
            return 0
        chosen = letters if args.all else [d for d in letters if d.sequence in set(args.sequences)]
        missing = set(args.sequences) - {d.sequence for d in chosen}
        if missing:
            console.print(f"[red]no dead letter with sequence {sorted(missing)}[/red]")
            return 1
        for letter in chosen:
            await replay(js, letter)
            console.print(f"replayed #{letter.sequence} → {letter.subject} ({letter.event_type} {letter.event_id})")
        return 0
    finally:
        await nc.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.dlq", description=__doc__)
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="show the dead letters")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    replaying = sub.add_parser("replay", help="publish dead letters again on their original subject")
    replaying.add_argument("sequences", nargs="*", type=int, help="dead-letter sequence numbers")
    replaying.add_argument("--all", action="store_true", help="replay every dead letter")
    args = parser.parse_args(argv)
    if args.command == "replay" and not args.all and not args.sequences:
        parser.error("replay needs sequence numbers or --all")
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
