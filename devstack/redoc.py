"""The API reference page's script: Redoc's standalone bundle, pinned, copied from the npm registry once.

``python -m devstack.redoc install`` (``make docs-ui``, which ``make venv``, ``make up`` and ``make test`` run)
fetches the pinned ``redoc`` package with the machine's ``npm pack`` (the npm registry only, never a CDN),
checks the tarball against the pinned integrity, and puts ``bundles/redoc.standalone.js`` (and its licence
notes) into ``third_party/redoc/`` (git-ignored), which the gateway serves at ``/docs/redoc.standalone.js``.
Without npm, or offline, it says why and leaves the folder as it was (``--optional`` exits 0 then): the
gateway then serves a notice at ``/docs`` instead, and ``/openapi.json`` as always.

Standard library only, so that any ``python3`` runs it before the venv exists.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["BUNDLE", "INTEGRITY", "PACKAGE", "VERSION", "RedocUnavailable", "install"]

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "redoc"
VERSION = "2.5.4"  # the last 2.x: one self-contained script (3.x loads icons from a CDN)
#: The npm registry's ``dist.integrity`` of redoc-2.5.4.tgz (``npm view redoc@2.5.4 dist.integrity``).
INTEGRITY = "sha512-M6jWhG1qoBnH6TFmzJnstyCZ87HmOY/UzDm78mHiYihEdlV/YcS9ogOo1NlElnJMeLsyxHFe2yFc4sNjHTrABQ=="
DEST = ROOT / "third_party" / "redoc"
BUNDLE = DEST / "redoc.standalone.js"
_MEMBERS = {
    "package/bundles/redoc.standalone.js": "redoc.standalone.js",
    "package/bundles/redoc.standalone.js.LICENSE.txt": "redoc.standalone.js.LICENSE.txt",
    "package/LICENSE": "LICENSE",
}


class RedocUnavailable(RuntimeError):
    """Redoc could not be fetched here (no npm, no registry) or was not what was pinned."""


def integrity_of(data: bytes) -> str:
    """The npm ``integrity`` (SRI sha512) of a tarball."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def _pack(workdir: Path, npm: str) -> Path:
    spec = f"{PACKAGE}@{VERSION}"
    try:
        done = subprocess.run(
            [npm, "pack", spec, "--pack-destination", str(workdir), "--json", "--ignore-scripts"],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise RedocUnavailable(f"`npm pack {spec}` failed: {error}") from error
    if done.returncode != 0:
        raise RedocUnavailable(f"`npm pack {spec}` failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    (packed,) = json.loads(done.stdout)
    return workdir / str(packed["filename"])


def install(dest: Path = DEST, npm: str | None = None) -> Path:
    """Fetch the pinned Redoc with ``npm pack``, check it, and put its standalone bundle into ``dest``."""
    npm = npm or shutil.which("npm")
    if npm is None:
        raise RedocUnavailable("npm is not installed (on Debian/Ubuntu: apt install npm)")
    with tempfile.TemporaryDirectory() as scratch:
        tarball = _pack(Path(scratch), npm)
        data = tarball.read_bytes()
        if integrity_of(data) != INTEGRITY:
            raise RedocUnavailable(
                f"{tarball.name} is not the pinned {PACKAGE}@{VERSION}: integrity {integrity_of(data)}"
            )
        staging = Path(scratch) / "out"
        staging.mkdir()
        with tarfile.open(tarball) as archive:
            for member, name in _MEMBERS.items():
                source = archive.extractfile(member)
                if source is None:
                    raise RedocUnavailable(f"{tarball.name} has no {member}")
                (staging / name).write_bytes(source.read())
        dest.mkdir(parents=True, exist_ok=True)
        for name in _MEMBERS.values():
            (staging / name).replace(dest / name)  # the bundle last: its presence means "installed"
    return dest / "redoc.standalone.js"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m devstack.redoc install [--dest DIR] [--optional]``."""
    parser = argparse.ArgumentParser(prog="python -m devstack.redoc", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["install"])
    parser.add_argument("--dest", type=Path, default=DEST, help="where to put the bundle (default: third_party/redoc)")
    parser.add_argument(
        "--optional", action="store_true", help="exit 0 when Redoc cannot be fetched (the gateway serves a notice)"
    )
    args = parser.parse_args(argv)
    try:
        bundle = install(args.dest)
    except RedocUnavailable as error:
        print(f"devstack.redoc: the API reference page (/docs) stays a notice: {error}", file=sys.stderr)
        return 0 if args.optional else 1
    print(f"{PACKAGE} {VERSION}: {bundle.relative_to(ROOT) if bundle.is_relative_to(ROOT) else bundle}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
