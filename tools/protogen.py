"""Code generation: proto/ → gen/ (Python + typed stubs), the gateway descriptor set and its OpenAPI document.

Usage: ``python -m tools.protogen gen`` regenerates; ``python -m tools.protogen check``
fails (exit 1) when the committed output is stale against ``proto/``.
"""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tools import openapi

__all__ = ["DESCRIPTOR_SET", "GEN", "OPENAPI", "PROTO", "ROOT", "diff", "generate", "vendor"]

ROOT = Path(__file__).resolve().parents[1]
PROTO = ROOT / "proto"
GEN = ROOT / "gen"
THIRD_PARTY = ROOT / "third_party" / "proto"
DESCRIPTOR_SET = ROOT / "gateway" / "orders_descriptor.binpb"
OPENAPI = ROOT / "gateway" / "openapi.json"  # tools/openapi.py derives it from the same roots

# Third-party protos the contracts import, copied from googleapis-common-protos so
# that buf and protoc work offline with no `deps:`.
VENDORED = (
    "google/api/annotations.proto",
    "google/api/field_behavior.proto",
    "google/api/http.proto",
    "google/api/resource.proto",
    "google/rpc/code.proto",
    "google/rpc/error_details.proto",
    "google/rpc/status.proto",
    "google/type/money.proto",
)
# What Envoy needs besides the public service: the error types it must render as JSON.
DESCRIPTOR_ROOTS = (
    "orders/v1/orders.proto",
    "google/rpc/status.proto",
    "google/rpc/error_details.proto",
)
PACKAGES = ("messaging", "orders", "payments", "notifications")
_GENERATED_SUFFIXES = (".py", ".pyi", "py.typed")


def _googleapis_root() -> Path:
    from google.api import annotations_pb2

    return Path(annotations_pb2.__file__).resolve().parents[2]


def _grpc_tools_include() -> Path:
    import grpc_tools

    return Path(grpc_tools.__file__).resolve().parent / "_proto"


def vendor(dest: Path = THIRD_PARTY) -> None:
    """Copy the third-party protos from the installed googleapis-common-protos."""
    src = _googleapis_root()
    for rel in VENDORED:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, target)


def _protoc(args: list[str]) -> None:
    bin_dir = Path(sys.executable).parent
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"-I{_grpc_tools_include()}",
        *args,
    ]
    subprocess.run(cmd, check=True)


def generate(proto_dir: Path, out_dir: Path, descriptor_set: Path, openapi_doc: Path) -> None:
    """Generate Python modules, stubs, the descriptor set and the OpenAPI document from ``proto_dir``."""
    with tempfile.TemporaryDirectory() as third_party, tempfile.TemporaryDirectory() as scratch:
        vendor(Path(third_party))
        files = sorted(p.relative_to(proto_dir).as_posix() for p in proto_dir.rglob("*.proto"))
        includes = [f"-I{proto_dir}", f"-I{third_party}"]
        for pkg in PACKAGES:
            shutil.rmtree(out_dir / pkg, ignore_errors=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        _protoc(
            [
                *includes,
                f"--python_out={out_dir}",
                f"--grpc_python_out={out_dir}",
                f"--mypy_out={out_dir}",
                f"--mypy_grpc_out={out_dir}",
                *files,
            ]
        )
        descriptor_set.parent.mkdir(parents=True, exist_ok=True)
        _protoc([*includes, "--include_imports", f"--descriptor_set_out={descriptor_set}", *DESCRIPTOR_ROOTS])
        # The same roots with their comments (source info), which the OpenAPI descriptions come from.
        described = Path(scratch) / "described.binpb"
        _protoc(
            [
                *includes,
                "--include_imports",
                "--include_source_info",
                f"--descriptor_set_out={described}",
                *DESCRIPTOR_ROOTS,
            ]
        )
        openapi.write(described, openapi_doc)
    for pkg in PACKAGES:
        (out_dir / pkg / "py.typed").touch()
        for directory in [out_dir / pkg, *(d for d in (out_dir / pkg).rglob("*") if d.is_dir())]:
            init = directory / "__init__.py"
            if not init.exists():
                init.write_text(f'"""Generated from proto/{directory.relative_to(out_dir).as_posix()}."""\n')


def _generated_files(out_dir: Path) -> set[str]:
    return {
        p.relative_to(out_dir).as_posix()
        for pkg in PACKAGES
        if (out_dir / pkg).exists()
        for p in (out_dir / pkg).rglob("*")
        if p.is_file() and p.name.endswith(_GENERATED_SUFFIXES)
    }


def diff(
    proto_dir: Path = PROTO, gen_dir: Path = GEN, descriptor_set: Path = DESCRIPTOR_SET, openapi_doc: Path = OPENAPI
) -> list[str]:
    """Regenerate from ``proto_dir`` into a scratch folder; list what differs from the committed output."""
    with tempfile.TemporaryDirectory() as scratch:
        fresh_gen = Path(scratch) / "gen"
        fresh_desc = Path(scratch) / "descriptor.binpb"
        fresh_doc = Path(scratch) / "openapi.json"
        generate(proto_dir, fresh_gen, fresh_desc, fresh_doc)
        fresh, committed = _generated_files(fresh_gen), _generated_files(gen_dir)
        problems = [f"gen/{name}: missing" for name in sorted(fresh - committed)]
        problems += [f"gen/{name}: not generated from proto/ any more" for name in sorted(committed - fresh)]
        problems += [
            f"gen/{name}: stale"
            for name in sorted(fresh & committed)
            if not filecmp.cmp(fresh_gen / name, gen_dir / name, shallow=False)
        ]
        if not descriptor_set.exists() or not filecmp.cmp(fresh_desc, descriptor_set, shallow=False):
            problems.append(f"{descriptor_set.name}: stale")
        if not openapi_doc.exists() or not filecmp.cmp(fresh_doc, openapi_doc, shallow=False):
            problems.append(f"{openapi_doc.name}: stale")
        return problems


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "gen"
    if command == "gen":
        vendor()
        generate(PROTO, GEN, DESCRIPTOR_SET, OPENAPI)
        return 0
    if command == "vendor":
        vendor()
        return 0
    if command == "check":
        problems = diff()
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("generated code is stale: run `make gen` and commit the result", file=sys.stderr)
            return 1
        print("gen/, the descriptor set and openapi.json are up to date with proto/")
        return 0
    print(f"usage: python -m tools.protogen [gen|check|vendor], not {command!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
