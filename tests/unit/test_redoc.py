"""devstack/redoc.py: the /docs page's Redoc comes from `npm pack` of the pinned release, checked, or not at all."""

from __future__ import annotations

import io
import json
import re
import sys
import tarfile
from pathlib import Path

import pytest

from devstack import redoc

ROOT = Path(__file__).resolve().parents[2]


def fake_npm(tmp_path: Path, files: dict[str, bytes], exit_code: int = 0) -> tuple[str, bytes]:
    """An `npm` that packs a tarball of ``files`` into --pack-destination, as `npm pack --json` reports it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    tarball = tmp_path / "fake.tgz"
    tarball.write_bytes(buffer.getvalue())
    log = tmp_path / "npm-args.json"
    script = tmp_path / "npm"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, shutil, sys\n"
        f"open({str(log)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
        f"if {exit_code}:\n"
        "    print('npm error network', file=sys.stderr); sys.exit(1)\n"
        "dest = sys.argv[sys.argv.index('--pack-destination') + 1]\n"
        f"shutil.copy({str(tarball)!r}, dest + '/redoc-{redoc.VERSION}.tgz')\n"
        f"print(json.dumps([{{'filename': 'redoc-{redoc.VERSION}.tgz'}}]))\n"
    )
    script.chmod(0o755)
    return str(script), buffer.getvalue()


PACKAGE_FILES = {
    "package/bundles/redoc.standalone.js": b"/* Redoc */ var Redoc = {};",
    "package/bundles/redoc.standalone.js.LICENSE.txt": b"licences",
    "package/LICENSE": b"MIT",
    "package/bundles/redoc.lib.js": b"not wanted",
}


def test_installs_the_bundle_of_the_pinned_release_when_its_integrity_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    npm, tarball = fake_npm(tmp_path, PACKAGE_FILES)
    monkeypatch.setattr(redoc, "INTEGRITY", redoc.integrity_of(tarball))
    bundle = redoc.install(tmp_path / "out", npm=npm)
    assert bundle.read_bytes() == PACKAGE_FILES["package/bundles/redoc.standalone.js"]
    assert sorted(p.name for p in bundle.parent.iterdir()) == [
        "LICENSE",
        "redoc.standalone.js",
        "redoc.standalone.js.LICENSE.txt",
    ]
    args = json.loads((tmp_path / "npm-args.json").read_text())
    assert args[:2] == ["pack", f"redoc@{redoc.VERSION}"]  # the registry's package, by its pinned version
    assert "--ignore-scripts" in args


def test_refuses_a_tarball_that_is_not_the_pinned_one(tmp_path: Path) -> None:
    npm, _ = fake_npm(tmp_path, PACKAGE_FILES)
    with pytest.raises(redoc.RedocUnavailable, match="not the pinned"):
        redoc.install(tmp_path / "out", npm=npm)
    assert not (tmp_path / "out").exists()


def test_without_npm_or_registry_it_says_why_and_optional_is_no_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    npm, _ = fake_npm(tmp_path, PACKAGE_FILES, exit_code=1)
    with pytest.raises(redoc.RedocUnavailable, match="npm error network"):
        redoc.install(tmp_path / "out", npm=npm)
    monkeypatch.setattr("devstack.redoc.shutil.which", lambda _: None)
    assert redoc.main(["install", "--dest", str(tmp_path / "out"), "--optional"]) == 0
    assert "npm is not installed" in capsys.readouterr().err
    assert redoc.main(["install", "--dest", str(tmp_path / "out")]) == 1
    assert not (tmp_path / "out").exists()


def test_the_pin_is_one_release_with_its_registry_integrity() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", redoc.VERSION)
    assert re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", redoc.INTEGRITY)
    assert redoc.BUNDLE == ROOT / "third_party" / "redoc" / "redoc.standalone.js"  # git-ignored, `make clean`ed
    assert "third_party/" in (ROOT / ".gitignore").read_text().splitlines()


def test_make_venv_up_and_the_test_targets_install_it() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = {
        m[1]: m[2].split()
        for m in re.finditer(r"^([a-z][\w-]*):([^#\n]*)", makefile, flags=re.MULTILINE)
        if not m[1].startswith(".")
    }
    for target in ("venv", "up", "test", "test-e2e", "test-contract"):
        assert "docs-ui" in targets[target], target
    assert targets["docs-ui"] == ["$(REDOC)"]
    assert re.search(
        r"^\$\(REDOC\): devstack/redoc\.py\n\t\$\(PYTHON\) -m devstack\.redoc install --optional$", makefile, re.M
    )
