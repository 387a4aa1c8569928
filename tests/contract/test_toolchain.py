"""buf lint, buf breaking and the stale-gen check work, and each one fails on bad input."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools import protogen

ROOT = protogen.ROOT
BASELINE = ROOT / "proto" / "baseline.binpb"


def _buf(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    buf = shutil.which("buf", path=str(Path(sys.executable).parent)) or shutil.which("buf")
    assert buf, "buf comes from the buf-bin wheel: run `make venv`"
    return subprocess.run([buf, *args], cwd=cwd, capture_output=True, text=True, check=False)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A copy of the buf workspace to break on purpose."""
    protogen.vendor()
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(ROOT / "proto", tmp_path / "proto")
    shutil.copytree(ROOT / "third_party", tmp_path / "third_party")
    return tmp_path


def _edit(path: Path, pattern: str, replacement: str) -> None:
    text = path.read_text()
    new, count = re.subn(pattern, replacement, text, count=1)
    assert count == 1, f"{pattern!r} not in {path}"
    path.write_text(new)


def test_buf_lint_is_clean(workspace: Path) -> None:
    result = _buf("lint", "proto", cwd=workspace)
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_lint_rejects_an_uncommented_element(workspace: Path) -> None:
    _edit(workspace / "proto/orders/v1/events.proto", r"  // The new order's id.\n", "")
    result = _buf("lint", "proto", cwd=workspace)
    assert result.returncode != 0
    assert "order_id" in result.stdout


def test_contracts_are_compatible_with_the_released_baseline(workspace: Path) -> None:
    result = _buf("breaking", "proto", "--against", str(BASELINE), cwd=workspace)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("pattern", "replacement", "complaint"),
    [
        (r"string order_id = 3;", "string order_id = 13;", "order_id"),
        (r"string order_id = 3;", "int64 order_id = 3;", 'changed type from "string" to "int64"'),
    ],
    ids=["renumbered", "retyped"],
)
def test_buf_breaking_catches_a_changed_event_field(
    workspace: Path, pattern: str, replacement: str, complaint: str
) -> None:
    _edit(workspace / "proto/orders/v1/events.proto", pattern, replacement)
    result = _buf("breaking", "proto", "--against", str(BASELINE), cwd=workspace)
    assert result.returncode != 0
    assert complaint in result.stdout


def test_committed_generated_code_is_fresh() -> None:
    assert protogen.diff() == []


def test_stale_check_flags_generated_code_behind_a_changed_proto(workspace: Path) -> None:
    _edit(
        workspace / "proto/payments/v1/events.proto",
        r"(  string decline_reason = 8;\n)",
        r"\1  // Added after the code was generated.\n  string retry_hint = 9;\n",
    )
    problems = protogen.diff(proto_dir=workspace / "proto")
    assert "gen/payments/v1/events_pb2.py: stale" in problems
    assert "gen/payments/v1/events_pb2.pyi: stale" in problems
