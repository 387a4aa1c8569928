"""``python -m devstack.dlq`` on a real nats-server: no stream, empty, one replayed, bad input, no NATS, logins."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from devstack.stack import NatsServer, free_port

ROOT = Path(__file__).resolve().parents[2]
DLQ = "DEAD_LETTERS"
CLI_DEADLINE_SECONDS = 30.0


@dataclass(frozen=True)
class Run:
    """What one CLI run printed and how it ended."""

    code: int
    out: str
    err: str


async def dlq(url: str, *args: str) -> Run:
    """Run the CLI as a user does (its own process), with a deadline."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "devstack.dlq",
        "--nats-url",
        url,
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CLI_DEADLINE_SECONDS)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


@dataclass(frozen=True)
class Nats:
    url: str  # the admin's credentials in it
    js: JetStreamContext
    server: NatsServer


@pytest.fixture
async def nats_js(tmp_path: Path) -> AsyncIterator[Nats]:
    """A fresh nats-server (JetStream and its users, no streams) and an admin client of it; both stopped afterwards."""
    server = NatsServer(tmp_path / "nats", streams=False).start()
    try:
        nc = await nats.connect(server.url, connect_timeout=5, max_reconnect_attempts=1)
        try:
            yield Nats(server.url, nc.jetstream(), server)
        finally:
            await nc.close()
    finally:
        server.stop()


async def park_one(js: JetStreamContext) -> int:
    """Put one dead letter in the stream as a consumer does (and a stream for its original subject)."""
    await js.add_stream(name="ORDERS", subjects=["orders.>"])
    await js.add_stream(name=DLQ, subjects=["dlq.>"])
    ack = await js.publish(
        "dlq.payment-svc-orders",
        b"payload-1",
        headers={
            "Nats-Msg-Id": "dlq:ORDERS:7:payment-svc-orders",
            "Event-Type": "orders.v1.OrderCreated",
            "Event-Id": "evt-1",
            "Dlq-Original-Subject": "orders.created",
            "Dlq-Original-Stream": "ORDERS",
            "Dlq-Original-Sequence": "7",
            "Dlq-Consumer": "payment-svc-orders",
            "Dlq-Reason": "handler failed 5 times",
        },
    )
    return ack.seq


def assert_clean(run: Run) -> None:
    assert "Traceback" not in run.out + run.err, run


async def test_without_a_dead_letter_stream_list_says_nothing_was_dead_lettered_and_exits_0(nats_js: Nats) -> None:
    run = await dlq(nats_js.url, "list")
    assert (run.code, run.out.strip()) == (0, "no dead-letter stream DEAD_LETTERS yet: nothing was ever dead-lettered")
    assert_clean(run)
    as_json = await dlq(nats_js.url, "list", "--json")
    assert (as_json.code, json.loads(as_json.out)) == (0, [])
    assert "no dead-letter stream" in as_json.err
    with pytest.raises(NotFoundError):  # listing did not create it
        await nats_js.js.stream_info(DLQ)


async def test_without_a_dead_letter_stream_replay_of_a_sequence_says_it_does_not_exist_and_exits_1(
    nats_js: Nats,
) -> None:
    run = await dlq(nats_js.url, "replay", "1")
    assert run.code == 1
    assert "no dead letter #1 in DEAD_LETTERS; no dead-letter stream DEAD_LETTERS yet" in run.err
    assert_clean(run)
    replay_all = await dlq(nats_js.url, "replay", "--all")
    assert (replay_all.code, "nothing to replay" in replay_all.out) == (0, True)


async def test_an_empty_dead_letter_stream_lists_nothing_and_exits_0(nats_js: Nats) -> None:
    await nats_js.js.add_stream(name=DLQ, subjects=["dlq.>"])
    run = await dlq(nats_js.url, "list")
    assert (run.code, run.out.strip()) == (0, "no dead letters in DEAD_LETTERS")
    assert_clean(run)
    as_json = await dlq(nats_js.url, "list", "--json")
    assert (as_json.code, json.loads(as_json.out)) == (0, [])


async def test_a_dead_letter_is_listed_then_replayed_on_its_original_subject_and_removed(nats_js: Nats) -> None:
    seq = await park_one(nats_js.js)

    listed = await dlq(nats_js.url, "list", "--json")
    assert listed.code == 0, listed
    (letter,) = json.loads(listed.out)
    assert (letter["sequence"], letter["consumer"], letter["subject"]) == (seq, "payment-svc-orders", "orders.created")
    assert (letter["event_id"], letter["reason"], bytes.fromhex(letter["data"])) == (
        "evt-1",
        "handler failed 5 times",
        b"payload-1",
    )
    table = await dlq(nats_js.url, "list")
    assert (table.code, "1 dead letter(s) in DEAD_LETTERS" in table.out) == (0, True)

    replayed = await dlq(nats_js.url, "replay", str(seq))
    assert replayed.code == 0, replayed
    assert f"replayed #{seq} → orders.created" in replayed.out
    again = await nats_js.js.get_msg("ORDERS", subject="orders.created")
    assert again.data == b"payload-1"
    assert again.headers is not None
    assert again.headers["Replayed-From-Dlq"] == str(seq)
    assert not any(k.startswith("Dlq-") for k in again.headers)

    after = await dlq(nats_js.url, "list")  # the stream exists, its only message is gone
    assert (after.code, after.out.strip()) == (0, "no dead letters in DEAD_LETTERS")
    assert_clean(after)


async def test_replay_of_a_sequence_that_does_not_exist_says_so_exits_1_and_replays_nothing(nats_js: Nats) -> None:
    seq = await park_one(nats_js.js)
    run = await dlq(nats_js.url, "replay", str(seq), "42")
    assert run.code == 1
    assert "no dead letter #42 in DEAD_LETTERS" in run.err
    assert_clean(run)
    still = await dlq(nats_js.url, "list", "--json")
    assert [d["sequence"] for d in json.loads(still.out)] == [seq]
    assert (await nats_js.js.stream_info("ORDERS")).state.messages == 0


async def test_unreachable_nats_is_one_line_naming_the_url_and_exit_69() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    for args in (["list"], ["replay", "1"]):
        run = await dlq(url, *args)
        assert run.code == 69, run
        assert run.out == ""
        (line,) = run.err.splitlines()
        assert line.startswith(f"cannot reach NATS at {url}: ")


async def test_the_admin_login_comes_from_an_env_file_and_never_shows_its_password(nats_js: Nats) -> None:
    await park_one(nats_js.js)
    env_file = nats_js.server.admin_env_path  # what `make up` writes to $STACK_DIR/nats/admin.env
    run = await dlq(nats_js.server.address, "--env-file", str(env_file), "list", "--json")
    assert run.code == 0, run
    assert [d["consumer"] for d in json.loads(run.out)] == ["payment-svc-orders"]
    assert nats_js.server.credentials is not None
    password = nats_js.server.credentials.password("admin")
    wrong = await dlq(nats_js.server.address, "--user", "admin", "--password", "not-it", "list")
    assert wrong.code == 77, wrong
    (line,) = wrong.err.splitlines()
    assert line == f"NATS at {nats_js.server.address} refused user admin: authorization violation " + (
        "(see --user, --password, --env-file)"
    )
    assert password not in run.out + run.err + wrong.out + wrong.err


async def test_a_services_login_may_not_read_the_dead_letters_and_says_why_with_exit_77(nats_js: Nats) -> None:
    await park_one(nats_js.js)
    login = nats_js.server.credentials_env("payment_svc")
    run = await dlq(nats_js.server.address, "--user", login["NATS_USER"], "--password", login["NATS_PASSWORD"], "list")
    assert run.code == 77, run
    (line,) = run.err.splitlines()
    assert line.startswith(f"user payment_svc may not do this on NATS at {nats_js.server.address}: ")
    assert 'permissions violation for publish to "$js.api.stream.info.dead_letters"' in line
    assert_clean(run)
