"""Optional profiling of the measured processes with py-spy (``--profile DIR``): collapsed stacks and a summary."""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devstack.binaries import binary

__all__ = ["PySpy", "summarize"]


class PySpy:
    """``py-spy record`` attached to each named process until ``stop()``; one collapsed-stack file each.

    Only samples of the thread holding the GIL are kept (``--gil``): where Python spends CPU,
    not where threads wait. uvloop's and gRPC's C code shows as the frame that called into it.
    """

    def __init__(self, pids: Mapping[str, int], out_dir: Path, label: str, rate: int = 250) -> None:
        self._pids = dict(pids)
        self._out_dir = out_dir
        self._label = label
        self._rate = rate
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self.files: dict[str, Path] = {}

    def start(self) -> None:
        self._out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in self._pids.items():
            out = self._out_dir / f"{self._label}-{name}.txt"
            self.files[name] = out
            command = [
                binary("py-spy"),
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(self._rate),
                "--nonblocking",
                "--gil",
            ]
            self._procs[name] = subprocess.Popen(
                [*command, "--format", "raw", "--nolineno", "--output", str(out)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    def stop(self) -> dict[str, Any]:
        """Stop every recorder (SIGINT makes py-spy write its file) and summarize each file."""
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self._procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()
        return {name: summarize(path) for name, path in self.files.items() if path.exists()}


def summarize(path: Path, top: int = 15) -> dict[str, Any]:
    """The functions with the most samples on top of the stack (self) and anywhere in it (total), in %."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count

    def percent(counter: Counter[str]) -> list[list[Any]]:
        return [[frame, round(100 * n / samples, 1)] for frame, n in counter.most_common(top)] if samples else []

    return {"file": str(path), "samples": samples, "self_pct": percent(own), "total_pct": percent(total)}
