"""Schemathesis fuzzes the running system through the gateway, driven by gateway/openapi.json.

Every operation of the document, in every phase Schemathesis has: its coverage cases (boundary values, wrong
types, undeclared methods such as TRACE, QUERY, PUT or DELETE on each path, missing auth), random fuzzing, and
stateful sequences that follow the document's links (CreateOrder, then GetOrder, CancelOrder or WatchOrder on
the orderId it returned). Signed in with a real bearer token from the stack's identity provider. Checked:
never a 5xx, status codes, content types, headers and bodies as documented (each WatchOrder event too), 405
with an Allow header for an undeclared method, auth not ignored, a cancelled or read order still there, and
our own check (tests/e2e/openapi_fuzz_checks.py) that every 4xx is google.rpc.Status JSON with a message a
person can act on. tests/e2e/schemathesis.toml holds the settings and says why two checks are off.

A fixed seed (derandomized, and so exactly repeatable, in CI); examples bounded so that the run takes well
under two minutes. A failure prints Schemathesis's report: each case with a curl command that reproduces it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from devstack.gateway import OPENAPI, page_or_placeholder
from devstack.stack import EnvoyProcess, free_port
from tests.e2e.conftest import System, TokenFor
from tests.e2e.openapi_fuzz_checks import actionable_status_json

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
HOOKS = "tests.e2e.openapi_fuzz_checks"
SEED = 20251203
#: The whole run; it takes about 30 s here (most of it WatchOrder streams waiting for the mock payment).
RUN_TIMEOUT = 240.0
CHECKS = {
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "use_after_free",
    "ensure_resource_availability",
    "ignored_auth",
    "actionable_status_json",  # ours
}


@pytest.fixture(scope="module")
async def fuzzed_gateway(system: System, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EnvoyProcess]:
    """The gateway in front of the same stack, its write limit raised out of the fuzzer's way.

    The fuzzer places and cancels hundreds of orders as one customer in a few seconds: the default limit
    (30 at once, 120 a minute) would answer most with 429. That is documented, so no check would fail,
    but the stateful phase would rarely get an order to follow. Everything else is the gateway as configured.
    """
    workdir = Path(tmp_path_factory.mktemp("fuzzed-envoy"))
    config = system.stack.gateway_config(
        port=free_port(),
        admin_port=free_port(),
        page=page_or_placeholder(workdir),
        rate_limit_per_minute=60_000,
        rate_limit_burst=10_000,
    )
    gateway = EnvoyProcess(config, workdir).start()
    try:
        await gateway.wait_ready()
        yield gateway
    finally:
        gateway.terminate()


async def run_schemathesis(url: str, token: str, reports: Path) -> tuple[int, str]:
    """``schemathesis run`` on gateway/openapi.json against ``url``; its exit code and output."""
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG),
        "run",
        str(OPENAPI),
        "--url",
        url,
        "--header",
        f"Authorization: Bearer {token}",
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--no-color",
        "--report",
        "ndjson,junit",
        "--report-dir",
        str(reports),
    ]
    if os.environ.get("CI"):
        command.append("--generation-deterministic")
    env = {**os.environ, "SCHEMATHESIS_HOOKS": HOOKS, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "COLUMNS": "120"}
    process = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        async with asyncio.timeout(RUN_TIMEOUT):
            output, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        output, _ = await process.communicate()
        pytest.fail(f"schemathesis ran over {RUN_TIMEOUT:.0f} s:\n{output.decode(errors='replace')[-20_000:]}")
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


def events(reports: Path) -> list[dict[str, Any]]:
    (ndjson,) = reports.glob("*.ndjson")
    return [json.loads(line) for line in ndjson.read_text().splitlines() if line.strip()]


def checks_run(recorded: list[dict[str, Any]]) -> set[str]:
    return {
        check["name"]
        for event in recorded
        for scenario in [event.get("ScenarioFinished")]
        if scenario
        for results in scenario.get("recorder", {}).get("checks", {}).values()
        for check in results
    }


def operations_called(recorded: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(method, path) of every request the fuzzer sent, each order id as ``{order_id}``."""
    called = set()
    for event in recorded:
        scenario = event.get("ScenarioFinished")
        for interaction in (scenario or {}).get("recorder", {}).get("interactions", {}).values():
            request = interaction["request"]
            path = re.sub(r"^https?://[^/]+", "", request["uri"]).split("?")[0]
            path = re.sub(r"^/v1/orders/[^/]+?(:cancel|:watch)?$", r"/v1/orders/{order_id}\1", path)
            called.add((request["method"], path))
    return called


async def test_the_gateway_holds_to_its_openapi_document_under_fuzzing(
    fuzzed_gateway: EnvoyProcess, token: TokenFor, customer: str, tmp_path: Path
) -> None:
    code, output = await run_schemathesis(fuzzed_gateway.url, await asyncio.to_thread(token, customer), tmp_path)
    summary = re.search(r"Test cases:\s*\n\s*(\d+) generated, (.*)", output)
    print(f"\nschemathesis (seed {SEED}): {summary[0].split(chr(10))[-1].strip() if summary else '?'}")
    assert code == 0, output[-30_000:]

    assert summary is not None, output[-5_000:]
    generated = int(summary[1])
    assert generated >= 300, f"only {generated} cases: the run is not exercising the API\n{output[-5_000:]}"
    assert re.search(r"Selected: 5/5\s+Tested: 5", output), output[-5_000:]
    # The stateful phase followed every link of the document (CreateOrder to the three it links to).
    assert "API Links:    3 covered / 3 selected / 3 total" in output, output[-5_000:]

    recorded = events(tmp_path)
    assert checks_run(recorded) >= CHECKS
    documented = {
        (verb.upper(), path)
        for path, item in json.loads(OPENAPI.read_text(encoding="utf-8"))["paths"].items()
        for verb in item
    }
    called = operations_called(recorded)
    assert documented <= called
    # Undeclared methods were tried on every path (and answered 405, or unsupported_method fails the run).
    assert {path for method, path in called if method in ("TRACE", "PUT", "DELETE")} >= {p for _, p in documented}


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        (400, "application/json", b'{"code":3,"message":""}'),  # what a QUERY got, and a raw control character
        (400, "application/json", b'{"code":3,"message":"order: Proto fields must have a name."}'),
        (404, "application/json", b'{"code":5,"message":"Could not resolve /v1/orders to a method."}'),  # a PUT
        (404, "text/plain", b"Not Found"),
        (400, "application/json", b"[]"),
    ],
)
def test_our_check_refuses_what_the_fuzzer_found(status: int, content_type: str, body: bytes) -> None:
    response = SimpleNamespace(status_code=status, headers={"content-type": [content_type]}, content=body)
    with pytest.raises(AssertionError):
        actionable_status_json(cast(Any, None), cast(Any, response), cast(Any, SimpleNamespace(method="POST")))


def test_our_check_passes_an_actionable_status_and_any_success() -> None:
    for status, body in (
        (400, b'{"code":3,"message":"order_id: must not contain control characters"}'),
        (405, b'{"code":12,"message":"method PUT is not allowed on /v1/orders: use GET or POST"}'),
        (200, b"{}"),
    ):
        response = SimpleNamespace(status_code=status, headers={"content-type": ["application/json"]}, content=body)
        assert (
            actionable_status_json(cast(Any, None), cast(Any, response), cast(Any, SimpleNamespace(method="GET")))
            is None
        )
