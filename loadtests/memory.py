"""Resident memory of a whole ``mqtt-kafka-sync run`` process tree, sampled while a scenario runs.

The tree is the supervisor and every descendant: task processes, the lag reader child (when a
throttle or the lag metrics need one) and, in builds before issue 16's launcher, multiprocessing's
resource tracker. RSS is summed over
the tree every ``interval`` seconds; the peak of that sum is what the issue's 60 MB target means.
Each process's own peak is its ``VmHWM`` (exact, the kernel keeps it), read at every sample while
the process lives. Shared library pages count once per process that maps them, as ``ps`` shows.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _status(pid: int) -> dict[str, int]:
    """The ``kB`` lines of ``/proc/<pid>/status`` (VmRSS, VmHWM, RssAnon, RssFile, RssShmem)."""
    values: dict[str, int] = {}
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return values
    for line in lines:
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
            values[name] = int(rest.split()[0])
    return values


def tree_pids(root: int) -> list[int]:
    """``root`` and every live descendant of it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _role(pid: int, root: int, tasks: set[int]) -> str:
    if pid == root:
        return "supervisor"
    if pid in tasks:
        return "task"
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except (FileNotFoundError, ProcessLookupError):
        return "other"
    if b"resource_tracker" in cmdline:
        return "resource tracker"
    # Spawned by multiprocessing (builds before child_process.py), or named by start_child.
    return "lag reader" if b"spawn_main" in cmdline or cmdline.endswith(b" lag-reader ") else "other"


@dataclass
class ProcessPeak:
    role: str
    hwm_mb: float = 0.0
    """The process's own peak resident set (``VmHWM``)."""
    anon_mb: float = 0.0
    file_mb: float = 0.0
    """Anonymous and file-backed (shared libraries) resident memory at the tree's peak."""


@dataclass
class TreeMemory:
    """Samples the tree of ``root`` in a thread between :meth:`start` and :meth:`stop`."""

    root: int
    task_pids: Callable[[], list[int]]
    interval: float = 0.1
    peak_mb: float = 0.0
    """The largest sum of RSS over the tree seen in one sample."""
    load_at_peak: tuple[float, float, float] = (0.0, 0.0, 0.0)
    processes: dict[int, ProcessPeak] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> float:
        """Sum of RSS over the tree now (MB); updates the peaks."""
        tasks = set(self.task_pids())
        now = {pid: _status(pid) for pid in tree_pids(self.root)}
        total = sum(s.get("VmRSS", 0) for s in now.values()) / 1024
        for pid, status in now.items():
            peak = self.processes.setdefault(pid, ProcessPeak(_role(pid, self.root, tasks)))
            if peak.role == "other":  # seen between fork and exec, or before the status file named it
                peak.role = _role(pid, self.root, tasks)
            elif peak.role == "lag reader" and pid in tasks:
                peak.role = "task"  # a spawned task, named by the status file after the first sample
            peak.hwm_mb = max(peak.hwm_mb, status.get("VmHWM", 0) / 1024)
        if total > self.peak_mb:
            self.peak_mb = total
            self.load_at_peak = os.getloadavg()
            for pid, status in now.items():
                self.processes[pid].anon_mb = status.get("RssAnon", 0) / 1024
                self.processes[pid].file_mb = (status.get("RssFile", 0) + status.get("RssShmem", 0)) / 1024
        return total

    def start(self) -> TreeMemory:
        self._thread = threading.Thread(target=self._run, name="tree-memory", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> dict[str, Any]:
        """Stop sampling; the figures for a results row."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        return self.summary()

    def summary(self) -> dict[str, Any]:
        return {
            "tree_peak_rss_mb": round(self.peak_mb, 1),
            "load_at_peak": [round(x, 2) for x in self.load_at_peak],
            "processes": [
                {
                    "role": p.role,
                    "pid": pid,
                    "peak_rss_mb": round(p.hwm_mb, 1),
                    "anon_mb_at_tree_peak": round(p.anon_mb, 1),
                    "file_mb_at_tree_peak": round(p.file_mb, 1),
                }
                for pid, p in sorted(self.processes.items())
            ],
        }


def print_tree(label: str, summary: dict[str, Any]) -> None:
    """One line per process of the tree, then the peak of the sum and the load average."""
    load = ", ".join(f"{x:.2f}" for x in summary["load_at_peak"])
    print(f"[memory] {label}: tree peak {summary['tree_peak_rss_mb']} MB (sum of RSS), load average {load}")
    for p in summary["processes"]:
        print(
            f"  {p['role']:<17} pid {p['pid']:>7}  peak {p['peak_rss_mb']:6.1f} MB"
            f"  at tree peak: anon {p['anon_mb_at_tree_peak']:5.1f} MB,"
            f" file {p['file_mb_at_tree_peak']:5.1f} MB"
        )
