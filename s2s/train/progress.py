"""Progress lines for the driver, one per Ray Train report. No Ray here.

The line and the JSON record are built from the metrics every worker reported (each rank
reports the same gathered figures plus its own rank and node).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence


def summarize_reports(per_worker: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One record for a report: rank 0's metrics plus the nodes every rank ran on."""
    record = dict(per_worker[0])
    record.pop("rank", None)
    record["nodes"] = [m.get("node", "") for m in per_worker]
    record.pop("node", None)
    return record


def format_report(r: dict[str, Any]) -> str:
    dev = " ".join(f"{k}={v:.2f}" for k, v in r.items()
                   if k.startswith("dev_") and k != "dev_score")
    workers = ", ".join(f"{v:.0f}" for v in r.get("tokens_per_s_workers", []))
    resumed = f" [resumed from step {r['resumed_from']}]" if r.get("resumed_from", -1) >= 0 else ""
    return (f"s2s-train: step {r['step']} epoch {r['epoch']} loss {r['train_loss']:.3f} "
            f"tok/s {r['tokens_per_s']:.0f} (workers: {workers}) lr {r['lr']:.2e} {dev} "
            f"({r['wall_s']:.0f}s){resumed}")


def append_record(path: str | Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


def read_records(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
