"""GatewayConfig(verify_tokens=False) is the benchmark's baseline only: the default always checks tokens."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from devstack.binaries import binary
from devstack.gateway import ENVOY_YAML, GatewayConfig, render, write_config
from devstack.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
JWT = "envoy.filters.http.jwt_authn"


def filters(doc: dict[str, Any]) -> list[dict[str, Any]]:
    (listener,) = doc["static_resources"]["listeners"]
    (chain,) = listener["filter_chains"]
    (manager,) = chain["filters"]
    found: list[dict[str, Any]] = manager["typed_config"]["http_filters"]
    return found


def config(tmp_path: Path, **settings: Any) -> GatewayConfig:
    page = tmp_path / "index.html"
    page.write_text("<html></html>")
    return GatewayConfig(page=page, **settings)


def test_the_default_gateway_checks_tokens_on_every_api_path(tmp_path: Path) -> None:
    assert GatewayConfig().verify_tokens is True
    (jwt,) = [f["typed_config"] for f in filters(render(config(tmp_path))) if f["name"] == JWT]
    assert {rule["match"]["prefix"] for rule in jwt["rules"]} == {"/v1/", "/orders.v1.OrderService/"}
    assert all(rule["requires"] == {"provider_name": "oidc"} for rule in jwt["rules"])


def test_the_benchmark_baseline_leaves_out_jwt_authn_and_nothing_else(tmp_path: Path) -> None:
    checked = render(config(tmp_path))
    baseline = render(config(tmp_path, verify_tokens=False))
    assert [f["name"] for f in filters(baseline)] == [f["name"] for f in filters(checked) if f["name"] != JWT]
    assert JWT not in str(baseline)
    for doc in (checked, baseline):  # the rest is the same document
        (listener,) = doc["static_resources"]["listeners"]
        listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"] = [
            f for f in filters(doc) if f["name"] != JWT
        ]
    assert baseline == checked
    out = write_config(config(tmp_path, verify_tokens=False), tmp_path / "envoy.yaml")
    done = subprocess.run(
        [binary("envoy"), "--mode", "validate", "-c", str(out), "--base-id", str(free_port())],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert JWT in ENVOY_YAML.read_text()  # the file itself is never changed
