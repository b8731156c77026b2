"""One tool's process, run as the same kind of child for every tool: its wall time and memory.

Peak memory is the kernel's high-water mark of resident memory (ru_maxrss) of the tool's
process, taken by a small launcher (runners/peak.py) that forks and waits for it, and,
polled from /proc every second, the largest sum of the resident memory of the process and
all its descendants (a tool that forks data-loader workers would show it there; none of the
three does with the settings used).
"""
from __future__ import annotations

import json
import os
import signal
import sys
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

PAGE = os.sysconf("SC_PAGE_SIZE")
LAUNCHER = Path(__file__).resolve().parent / "runners" / "peak.py"


@dataclass
class Run:
    returncode: int
    wall_s: float
    maxrss_mb: float          # kernel high-water mark of the process itself
    tree_peak_mb: float       # polled peak of the process tree's summed RSS
    timed_out: bool
    log: Path
    max_load: float = 0.0     # highest 1-minute load average seen while it ran

    @property
    def peak_mb(self) -> float:
        return max(self.maxrss_mb, self.tree_peak_mb)


def thread_env(threads: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every tool runs with: `threads` intra-op threads for every
    OpenMP/MKL/BLAS pool (each runner also calls torch.set_num_threads)."""
    env = dict(os.environ if base is None else base)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                 "NUMEXPR_NUM_THREADS"):
        env[name] = str(threads)
    env["TOKENIZERS_PARALLELISM"] = "false"
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONWARNINGS"] = "ignore"           # the peers' deprecation warnings, per call
    return env


def run(cmd: Sequence[str], log: Path, env: Mapping[str, str], cwd: Path | None = None,
        timeout_s: float | None = None) -> Run:
    log.parent.mkdir(parents=True, exist_ok=True)
    peak_file = log.with_suffix(".peak.json")
    peak_file.unlink(missing_ok=True)
    launched = [sys.executable, "-S", str(LAUNCHER), str(peak_file), "--", *cmd]
    started = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(launched, stdout=out, stderr=subprocess.STDOUT, env=dict(env),
                                cwd=cwd, start_new_session=True)
        peak = [0, os.getloadavg()[0]]
        done = threading.Event()
        poller = threading.Thread(target=_poll, args=(proc.pid, peak, done), daemon=True)
        poller.start()
        timed_out = False
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        done.set()
        poller.join()
    wall = time.perf_counter() - started
    maxrss_mb = json.loads(peak_file.read_text())["maxrss_kb"] / 1024 if peak_file.exists() else 0.0
    return Run(proc.returncode, wall, maxrss_mb, peak[0] / 2**20, timed_out, log, peak[1])


def _poll(root: int, peak: list[int], done: threading.Event) -> None:
    while not done.is_set():
        peak[0] = max(peak[0], tree_rss(root))
        peak[1] = max(peak[1], os.getloadavg()[0])
        done.wait(1.0)


def tree_rss(root: int, proc_dir: Path = Path("/proc")) -> int:
    """Resident bytes of `root` and all its descendants, read from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            statm = (entry / "statm").read_text().split()
        except OSError:
            continue
        pid = int(entry.name)
        ppid = parse_ppid(stat)
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(statm[1]) * PAGE
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, ()))
    return total


def parse_ppid(stat: str) -> int:
    """The parent pid from a /proc/PID/stat line; the command name (field 2) is in
    parentheses and may itself hold spaces and parentheses."""
    return int(stat[stat.rindex(")") + 2:].split()[1])
