"""Where ``orders login`` keeps its token: ``$XDG_CONFIG_HOME/orders/token`` (else ``~/.config/orders/token``).

The file is readable by its owner alone (0600) in a folder only its owner may enter (0700); it is
replaced atomically, so a reader never sees half a token.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

__all__ = ["load_token", "remove_token", "save_token", "token_file"]


def token_file(env: Mapping[str, str] | None = None) -> Path:
    """The token file's path (XDG base directories: a relative or empty ``XDG_CONFIG_HOME`` is ignored)."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".config"
    return root / "orders" / "token"


def save_token(token: str, path: Path | None = None) -> Path:
    """Keep ``token`` in the token file (mode 0600, its folder 0700); returns the file's path."""
    path = path or token_file()
    folder = path.parent
    folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.mkdir(mode=0o700, exist_ok=True)
    folder.chmod(0o700)  # ours alone, even if it was made before with a looser mode
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".token-")  # created 0600
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(token.strip() + "\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def load_token(path: Path | None = None) -> str:
    """The kept token, or ``""`` when there is none."""
    try:
        return (path or token_file()).read_text().strip()
    except FileNotFoundError:
        return ""


def remove_token(path: Path | None = None) -> bool:
    """Forget the kept token; whether there was one."""
    try:
        (path or token_file()).unlink()
    except FileNotFoundError:
        return False
    return True
