"""The ``orders`` command against an in-process fake OrderService: the API's JSON, timelines, settling, no service."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from orders.v1 import orders_pb2

from orders_client.cli import main
from tests.unit.test_client_calls import TOKEN, FakeOrders, free_port, paid, refunded, serving, until


def api_json(message: Message) -> dict[str, Any]:
    """What the gateway prints for ``message`` (Envoy's always_print_primitive_fields)."""
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


async def orders(*args: str, stdout: io.StringIO | None = None, token: str | None = TOKEN) -> tuple[int, str, str]:
    """Run ``orders [--token TOKEN] ARGS`` in a worker thread (it runs its own event loop); code, stdout, stderr."""
    out, err = stdout or io.StringIO(), io.StringIO()

    def run() -> int:
        with pytest.raises(SystemExit) as exit_:
            main([*(["--token", token] if token is not None else []), *args])
        return int(exit_.value.code or 0)

    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = await asyncio.to_thread(run)
    return code, out.getvalue(), err.getvalue()


# --- --json prints exactly the gateway's proto3 JSON -------------------------------------------


async def test_get_json_is_the_gateway_json_of_the_same_order() -> None:
    history = refunded("o-1")
    async with serving(FakeOrders(history)) as target:
        code, out, err = await orders("--json", "--target", target, "get", "o-1")
    assert (code, err) == (0, "")
    assert json.loads(out) == api_json(history[-1])
    assert out.count("\n") == 1


async def test_list_json_is_the_gateway_json_of_a_list_orders_response() -> None:
    histories = [paid("o-1"), refunded("o-2")]
    async with serving(FakeOrders(*histories)) as target:
        code, out, _ = await orders("list", "--json", "--target", target)
    assert code == 0
    expected = orders_pb2.ListOrdersResponse(orders=[history[-1] for history in histories])
    assert json.loads(out) == api_json(expected)
    assert list(json.loads(out)) == ["orders", "nextPageToken"]


async def test_watch_json_prints_each_version_as_one_gateway_json_line() -> None:
    history = refunded("o-1")
    async with serving(FakeOrders(history)) as target:
        code, out, _ = await orders("--json", "--target", target, "watch", "o-1")
    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == [api_json(message) for message in history]


async def test_place_wait_json_prints_the_settled_order_as_the_gateway_would() -> None:
    history = paid("o-1")
    async with serving(FakeOrders(history)) as target:
        code, out, _ = await orders("--json", "--target", target, "place", "--item", "A:1:1", "--wait")
    assert code == 0
    printed = json.loads(out)
    assert printed == api_json(history[-1])
    assert (printed["orderId"], printed["state"], printed["total"]["units"]) == ("o-1", "ORDER_STATE_PAID", "25")


# --- human output: the refund state, the timeline, a watch step by step -------------------------


async def test_get_shows_the_refund_state_and_the_timeline() -> None:
    async with serving(FakeOrders(refunded("o-1"))) as target:
        code, out, _ = await orders("--target", target, "get", "o-1")
    assert code == 0
    lines = [" ".join(line.replace("│", " ").split()) for line in out.splitlines()]
    assert "refund refunded" in lines
    assert "state CANCELLED" in lines
    assert "time step by detail" in lines
    assert "2026-01-02T03:04:06+00:00 cancelled customer changed my mind" in lines
    assert "2026-01-02T03:04:07+00:00 refund requested payment charged after the cancel" in lines
    assert lines.index("2026-01-02T03:04:05+00:00 placed customer") < lines.index(
        "2026-01-02T03:04:08+00:00 refunded payment 25.00 USD refunded"
    )


async def test_get_of_a_paid_order_says_no_refund_is_owed() -> None:
    async with serving(FakeOrders(paid("o-1"))) as target:
        _, out, _ = await orders("--target", target, "get", "o-1")
    assert "none owed" in out


async def test_watch_prints_each_step_as_it_arrives_and_ends_when_settled() -> None:
    fake = FakeOrders(refunded("o-1"))
    out = io.StringIO()

    async def after_the_last_step_is_printed(i: int) -> None:
        last = fake.histories["o-1"][i - 1].timeline[-1]
        label = orders_pb2.OrderStepKind.Name(last.kind).removeprefix("ORDER_STEP_KIND_").lower().replace("_", " ")
        await until(lambda: f"  {label}  " in out.getvalue())

    fake.before_next = after_the_last_step_is_printed
    async with serving(fake) as target:
        code, printed, _ = await orders("--target", target, "watch", "o-1", stdout=out)
    assert code == 0
    assert printed.splitlines() == [
        "2026-01-02T03:04:05+00:00  orders/o-1  placed  by customer",
        "2026-01-02T03:04:06+00:00  orders/o-1  cancelled  by customer  changed my mind",
        "2026-01-02T03:04:07+00:00  orders/o-1  payment succeeded  by payment",
        "2026-01-02T03:04:07+00:00  orders/o-1  refund requested  by payment  charged after the cancel",
        "2026-01-02T03:04:08+00:00  orders/o-1  refunded  by payment  25.00 USD refunded",
        "orders/o-1  CANCELLED  refund REFUNDED",
    ]


# --- nothing listening: say so at once, with the way out -----------------------------------------


def test_nothing_listening_exits_69_within_5s_naming_the_target_and_the_fix() -> None:
    target = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    human, as_json = (  # both at once: each waits out the connect timeout
        subprocess.Popen(
            [sys.executable, "-m", "orders_client", *json_flag, "--target", target, "get", "x"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "NO_COLOR": "1"},
        )
        for json_flag in ([], ["--json"])
    )
    outputs = [process.communicate(timeout=30) for process in (human, as_json)]
    assert time.monotonic() - started < 5
    assert (human.returncode, as_json.returncode) == (69, 69), outputs
    assert outputs[0] == (
        "",
        f"error: cannot reach the order service at {target} (no connection within 2s)\n"
        "  is the stack running? Start it with `make up`, or point --target (or $ORDERS_TARGET) at the service\n",
    )
    error = json.loads(outputs[1][1])["error"]
    assert (error["type"], error["code"]) == ("Unreachable", "UNAVAILABLE")
    assert target in error["message"]
    assert "make up" in error["hint"]
