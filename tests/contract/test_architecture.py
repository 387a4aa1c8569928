"""The import rules hold (import-linter), and they do catch a module that breaks them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("chassis", "order_svc", "payment_svc", "notification_svc", "devstack")
GENERATED = ("messaging", "orders", "payments", "notifications")
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env={"PYTHONPATH": f"{root}:{root / 'gen'}", "PATH": str(Path(sys.executable).parent)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_repository_keeps_every_import_rule() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.fixture(scope="module")
def copy_of_the_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    for name in PACKAGES:
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in GENERATED:
        shutil.copytree(ROOT / "gen" / name, root / "gen" / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


@pytest.mark.parametrize(
    ("module", "bad_import", "rule"),
    [
        ("chassis/outbox.py", "import devstack.stack", "never imports developer tooling"),
        ("order_svc/usecases.py", "import rich", "never imports developer tooling"),
        ("order_svc/usecases.py", "import payment_svc.domain", "A service never imports another service"),
        ("notification_svc/store.py", "import order_svc.store", "A service never imports another service"),
        ("chassis/ids.py", "import orders.v1.events_pb2", "The chassis knows no service"),
        ("order_svc/domain.py", "import nats", "Domain modules are pure"),
        ("payment_svc/domain.py", "import payments.v1.payments_pb2", "Domain modules are pure"),
    ],
)
def test_a_module_that_breaks_a_rule_is_caught(copy_of_the_tree: Path, module: str, bad_import: str, rule: str) -> None:
    path = copy_of_the_tree / module
    original = path.read_text()
    path.write_text(original + f"\n{bad_import}  # noqa\n")
    try:
        result = lint_imports(copy_of_the_tree)
    finally:
        path.write_text(original)
    assert result.returncode != 0, result.stdout
    broken = [line for line in result.stdout.splitlines() if line.rstrip().endswith("BROKEN")]
    assert any(rule in line for line in broken) or rule in result.stdout.split("Broken contracts")[-1], result.stdout
