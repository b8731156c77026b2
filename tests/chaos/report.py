"""The chaos report: one row per run, printed at the end of the pytest session
(conftest.py's terminal summary) and written to bench/results/chaos.json."""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

from .workload import Verdict

RESULTS_FILE = Path(__file__).resolve().parents[2] / "bench" / "results" / "chaos.json"
COLUMNS = ("mode", "N", "poison", "faults applied", "lost", "duplicates", "DLQ", "DLQ dup", "order viol.", "seconds")


@dataclass(frozen=True)
class ChaosRun:
    mode: str
    count: int
    poison: int
    faults: list[str]
    verdict: Verdict
    seconds: float
    uncommitted: int     # input records whose offsets the group never committed (a stall)
    ingress: list[dict]  # counters of the ingress replicas alive at the end (JSON only)

    def row(self) -> tuple[str, ...]:
        v = self.verdict
        return (self.mode, str(self.count), str(self.poison), "; ".join(self.faults), str(v.lost), str(v.duplicates),
                str(v.dead_letters), str(v.dlq_duplicates), str(v.ordering_violations), f"{self.seconds:.0f}")


RUNS: list[ChaosRun] = []  # filled by the tests, read by the terminal summary


def table(runs: list[ChaosRun]) -> list[str]:
    """A Markdown table, ready for the README."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    return lines + ["| " + " | ".join(run.row()) + " |" for run in runs]


def write_json(runs: list[ChaosRun], path: Path = RESULTS_FILE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "runs": [dataclasses.asdict(run) for run in runs]}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
