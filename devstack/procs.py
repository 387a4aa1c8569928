"""Child processes of the dev stack and the tests: start them orphan-safe, wait for them, stop them."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "ROOT",
    "child_process_options",
    "free_port",
    "log_tail",
    "orphan_safe",
    "stop_process",
    "wait_for",
    "wait_for_port",
]

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
_SETPRIV = shutil.which("setpriv")


def child_process_options() -> dict[str, Any]:
    """Popen options for a child that is stopped by its starter alone.

    Own session: a Ctrl-C in the terminal reaches only the starter, which stops its children
    in order. No ``preexec_fn``: it would force a plain fork() of a process running gRPC,
    whose fork handlers can abort the child (see ``orphan_safe`` for the parent-death signal).
    """
    return {"start_new_session": True}


def orphan_safe(command: list[str]) -> list[str]:
    """``command`` run so that it gets SIGTERM if its starter dies, even by SIGKILL (Linux ``setpriv``)."""
    if _SETPRIV is None:
        return command
    return [_SETPRIV, "--pdeathsig", "TERM", "--", *command]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for(
    probe: Callable[[], Awaitable[T]],
    *,
    timeout: float,
    interval: float = 0.02,
    what: str = "condition",
) -> T:
    """Poll ``probe`` until it returns a truthy value (returned) or ``timeout`` passes (TimeoutError)."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = await probe()
            if value:
                return value
        except Exception as error:
            last_error = error
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}; last error: {last_error!r}")
        await asyncio.sleep(interval)


def log_tail(path: Path, lines: int) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def stop_process(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGTERM, wait up to ``timeout`` s, then SIGKILL; the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def wait_for_port(port: int, *, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until something accepts TCP connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")
