"""Helpers shared by the Ray Train integration tests (plain functions, no fixtures)."""
from __future__ import annotations

import json
import os
import queue
import signal
import threading
import time
from pathlib import Path
from typing import IO, Any

import yaml

REPO_DIR = Path(__file__).resolve().parents[3]
TRAIN_PAIRS = 2000


def toy_config(path: Path, data_dir: Path, ray: dict[str, Any] | None = None,
               **training: Any) -> Path:
    """Write a toy-reverse experiment YAML with absolute data paths; return its path.

    Small batches: 2,000 pairs give ~27 steps per epoch on each of 2 workers, and the
    model reaches high dev BLEU within 4 epochs.
    """
    cfg = yaml.safe_load((REPO_DIR / "configs" / "toy-reverse.yaml").read_text())
    cfg["data"].update(train=str(data_dir / "train.parquet"), dev=str(data_dir / "dev.parquet"),
                       test=str(data_dir / "test.parquet"))
    cfg["training"].update(epochs=4, batch_tokens=300, warmup_steps=20, dev_sentences=100,
                           max_minutes=5.0, eval_every=1000)
    cfg["training"].update(training)
    cfg["ray"] = ray or {}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def lines_until(stream: IO[str], marker: str, timeout: float) -> list[str]:
    """Read `stream` until a line contains `marker`; every line read so far.

    A reader thread feeds a queue so the wait is bounded even if the process goes silent
    (and keeps draining the pipe afterwards). Raises TimeoutError with the output seen.
    """
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if marker in line:
            return seen
    raise TimeoutError(f"no line with {marker!r} within {timeout:.0f}s; output:\n"
                       + "".join(seen[-40:]))


class WorkerKiller(threading.Thread):
    """Kills one Ray Train worker process from outside, with SIGKILL, once the driver's
    OUT/progress.jsonl holds a report at step `at_step` or later.

    Ray Train's controller registers a report's checkpoint before its callbacks (the
    progress log) see it, so the restarted worker group has that checkpoint, or a later
    one, to come back to. The workers are found in the connected cluster's actor table
    (its GCS: the test clusters run without a dashboard, which the state API needs).
    """

    def __init__(self, progress_log: Path, at_step: int, timeout: float = 300):
        super().__init__(daemon=True)
        self.progress_log, self.at_step, self.timeout = progress_log, at_step, timeout
        self.seen_step: int | None = None     # the report that triggered the kill
        self.killed_pid: int | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.seen_step = self._wait_for_report()
            self.killed_pid = alive_train_worker_pids()[0]
            os.kill(self.killed_pid, signal.SIGKILL)
        except BaseException as err:      # reported by the test, not lost in the thread
            self.error = err

    def _wait_for_report(self) -> int:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            steps = [r["step"] for r in _records_so_far(self.progress_log)]
            if steps and steps[-1] >= self.at_step:
                return steps[-1]
            time.sleep(0.05)     # a file another process appends to: nothing to wait on
        raise TimeoutError(f"no report at step >= {self.at_step} within {self.timeout:.0f}s")


def _records_so_far(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:      # the line being written
            break
    return records


def alive_train_worker_pids() -> list[int]:
    """Process ids of the live Ray Train worker actors of the connected cluster."""
    from ray._private import state

    actors = state.actors(actor_state_name="ALIVE").values()
    pids = sorted(a["Pid"] for a in actors if a["ActorClassName"] == "RayTrainWorker")
    if not pids:
        raise RuntimeError("no live RayTrainWorker actor in the cluster")
    return pids
