"""Per-process cost from /proc: CPU seconds (user + system, all threads), peak RSS, and who listens on a port."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["CpuMeter", "cpu_seconds", "peak_rss_mb", "pid_listening_on"]

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of every thread of ``pid`` so far, in seconds; None if it is gone."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # fields 14 and 15 of proc(5)


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set (VmHWM) in MiB; None if it is gone."""
    try:
        for line in (_PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def pid_listening_on(port: int) -> int | None:
    """The pid of the process (of this user) that listens on TCP ``port`` (IPv4 or IPv6), if any."""
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (_PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{parts[9]}]")
    if not inodes:
        return None
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(entry.name)
        except OSError:
            continue
    return None


class CpuMeter:
    """CPU time each named process spent between ``start()`` and ``stop()``, per operation."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self._pids = dict(pids)
        self._before: dict[str, float | None] = {}
        self._spent: dict[str, float | None] = {}

    def start(self) -> None:
        self._before = {name: cpu_seconds(pid) for name, pid in self._pids.items()}

    def stop(self) -> None:
        for name, pid in self._pids.items():
            before, after = self._before.get(name), cpu_seconds(pid)
            self._spent[name] = None if before is None or after is None else after - before

    def ms_per_op(self, ops: int, system: tuple[str, ...] = ()) -> dict[str, float | None]:
        """CPU-ms per operation of each process, plus ``system_total`` over the ``system`` processes."""
        per: dict[str, float | None] = {
            name: None if spent is None or ops <= 0 else round(spent * 1000 / ops, 3)
            for name, spent in self._spent.items()
        }
        if system:
            parts = [self._spent.get(name) for name in system if name in self._spent]
            known = [p for p in parts if p is not None]
            per["system_total"] = round(sum(known) * 1000 / ops, 3) if known and ops > 0 else None
        return per
