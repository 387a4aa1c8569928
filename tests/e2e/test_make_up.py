"""``make up`` itself: healthy, signs a customer in, serves an order, logs it, stops on Ctrl-C with no process
left, keeps its data."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from devstack.stack import free_port, wait_for
from devstack.up import DEFAULT_PORTS
from orders_client._devlogin import dev_token

ROOT = Path(__file__).resolve().parents[2]
CUSTOMER = "make-up"
ORDER = {
    "customerId": CUSTOMER,
    "lineItems": [{"sku": "SKU-1", "quantity": 1, "unitPrice": {"currencyCode": "USD", "units": "3"}}],
    "paymentMethod": "pm_card_visa",
}


def up_env(stack_dir: Path) -> dict[str, str]:
    """The caller's environment (minus make's own), with every port free and the state in ``stack_dir``."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    env.update({var: str(free_port()) for var in DEFAULT_PORTS})
    env["STACK_DIR"] = str(stack_dir)
    env["PAYMENT_SVC_LATENCY_MS"] = "300"
    env["MONGODB_URI"] = ""  # SQLite, whatever a developer's .env says (the real environment wins)
    return env


class MakeUp:
    """``make up`` in its own process group, as a terminal would run it; ``interrupt`` is Ctrl-C."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.state_file = Path(env["STACK_DIR"]) / "up.json"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                ["make", "--no-print-directory", "up"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def ready(self, timeout: float = 240) -> dict[str, Any]:
        async def state() -> dict[str, Any]:
            if self.proc.poll() is not None:
                raise RuntimeError(f"make up exited with {self.proc.returncode}:\n{self.output()[-4000:]}")
            if not self.state_file.exists():
                return {}
            loaded: dict[str, Any] = json.loads(self.state_file.read_text())
            return loaded

        try:
            return await wait_for(state, timeout=timeout, interval=0.1, what="make up to be ready")
        except TimeoutError as error:
            raise TimeoutError(f"{error}\n{self.output()[-4000:]}") from None

    def interrupt(self, timeout: float = 120) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise


@contextmanager
def make_up(env: dict[str, str], log: Path) -> Iterator[MakeUp]:
    running = MakeUp(env, log)
    try:
        yield running
    finally:
        running.interrupt()


async def sign_in(env: dict[str, str], customer: str) -> dict[str, str]:
    """A token from `make up`'s identity provider (on OIDC_PORT), as the Authorization header."""
    token = await asyncio.to_thread(dev_token, customer, issuer=f"http://127.0.0.1:{env['OIDC_PORT']}")
    return {"Authorization": f"Bearer {token}"}


def still_running(pids: dict[str, int]) -> dict[str, int]:
    alive = {}
    for name, pid in pids.items():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] != "Z":  # a zombie is dead, merely not yet reaped
            alive[name] = pid
    return alive


async def test_make_up_runs_serves_stops_and_keeps_data(tmp_path: Path) -> None:
    env = up_env(tmp_path / "var")
    with make_up(env, tmp_path / "first.log") as first:
        state = await first.ready()
        first_token = await sign_in(env, CUSTOMER)
        async with httpx.AsyncClient(base_url=state["gateway"], timeout=30, trust_env=False) as anonymous:
            assert (await anonymous.get("/")).status_code == 200  # the page needs no token ...
            assert (await anonymous.get("/v1/orders")).status_code == 401  # ... the API does
        async with httpx.AsyncClient(
            base_url=state["gateway"], timeout=30, trust_env=False, headers=first_token
        ) as http:
            placed = await http.post("/v1/orders", json=ORDER)
            assert placed.status_code == 200, placed.text
            order_id = placed.json()["orderId"]
            async with http.stream("GET", f"/v1/orders/{order_id}:watch") as watch:
                lines = [line async for line in watch.aiter_lines() if line.startswith("data:")]
            assert "ORDER_STATE_PAID" in lines[-1]
    assert first.proc.returncode is not None
    assert still_running(state["pids"]) == {}, first.output()[-4000:]
    assert not first.state_file.exists()

    out = first.output()
    assert "order-saga is up" in out
    assert "curl" in out
    # How to get a token, from this provider (here not on its default port).
    assert f"TOKEN=$(.venv/bin/orders token alice --issuer http://127.0.0.1:{env['OIDC_PORT']})" in out
    assert "Authorization: Bearer $TOKEN" in out
    assert f"http://127.0.0.1:{env['OIDC_PORT']}" in out  # where the identity provider is
    assert "oidc" in state["pids"]
    for name in state["pids"]:
        assert f"{name} │ " in out, f"no prefixed log line of {name}"
    # One order can be followed through the services by its id.
    for service, event in [
        ("order_svc", "event published"),
        ("payment_svc", "event consumed"),
        ("payment_svc", "event published"),
        ("order_svc", "event consumed"),
        ("notification_svc", "event consumed"),
    ]:
        assert any(
            line.lstrip().startswith(f"{service} │") and event in line and order_id in line for line in out.splitlines()
        ), f"{service} did not log '{event}' for {order_id}"

    # A second `make up` on the same state still has the order. The provider's keys are new at every
    # start, so the first run's token is refused; the same customer signs in again and sees the order.
    with make_up(env, tmp_path / "second.log") as second:
        state = await second.ready()
        async with httpx.AsyncClient(base_url=state["gateway"], timeout=30, trust_env=False) as http:
            stale = await http.get(f"/v1/orders/{order_id}", headers=first_token)
            assert stale.status_code == 401, stale.text
            again = await http.get(f"/v1/orders/{order_id}", headers=await sign_in(env, CUSTOMER))
            assert again.status_code == 200, again.text
            assert again.json()["state"] == "ORDER_STATE_PAID"
    assert still_running(state["pids"]) == {}, second.output()[-4000:]


def test_make_up_says_which_port_is_taken(tmp_path: Path) -> None:
    env = up_env(tmp_path / "var")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(env["GATEWAY_PORT"])))
        squatter.listen()
        done = subprocess.run(
            ["make", "--no-print-directory", "up"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    assert done.returncode != 0
    assert f"{env['GATEWAY_PORT']}  the gateway (Envoy)" in done.stdout, done.stdout + done.stderr
    assert "GATEWAY_PORT" in done.stdout
    assert not (tmp_path / "var" / "up.json").exists()
