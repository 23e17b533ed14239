"""What the benchmark scripts read of a process from Linux's /proc (empty elsewhere)."""

from __future__ import annotations

import os
from pathlib import Path


def read(pid: int, name: str) -> str:
    """``/proc/<pid>/<name>``, or "" when the process (or /proc) is gone."""
    try:
        return Path(f"/proc/{pid}/{name}").read_text()
    except OSError:
        return ""


def rss_bytes(pid: int) -> int:
    """Resident set size of a process."""
    line = next((x for x in read(pid, "status").splitlines() if x.startswith("VmRSS:")), "")
    return int(line.split()[1]) * 1024 if line else 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = [*read(pid, "stat").rsplit(")", 1), ""][1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") if fields else 0.0


def children(pid: int) -> list[int]:
    """Child processes, whichever of its threads started them.

    The scoring helper is spawned from a thread, so the main task's list may not hold it.
    """
    tasks = Path(f"/proc/{pid}/task")
    names = [t.name for t in tasks.iterdir()] if tasks.is_dir() else []
    return [int(c) for name in names for c in read(pid, f"task/{name}/children").split()]
