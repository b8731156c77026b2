"""Fault tolerance: a worker process killed from outside and a killed driver both resume from
the last checkpoint."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict

import pytest

from s2s.train.config import load_ray_config
from s2s.train.launcher import train_on_ray
from s2s.train.progress import read_records

from .helpers import REPO_DIR, TRAIN_PAIRS, WorkerKiller, lines_until, toy_config

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(420)]


def test_killed_worker_resumes_from_the_last_checkpoint(ray_cluster, toy_data, tmp_path):
    # ~27 steps per epoch on each of 2 workers, a report (and checkpoint) every 10 steps and
    # at each epoch's end. Once the report at step 60 (in epoch 3, the last) is in the progress
    # log, one worker process is SIGKILLed from outside; the group restarts from the latest
    # checkpoint and finishes the epoch.
    config = toy_config(tmp_path / "c.yaml", toy_data, epochs=3,
                        ray={"workers": 2, "checkpoint_every": 10, "max_failures": 1,
                             "record_examples_dir": str(tmp_path / "audit")})
    killer = WorkerKiller(tmp_path / "run" / "progress.jsonl", at_step=60)
    killer.start()
    summary = train_on_ray(*load_ray_config(config), tmp_path / "run")
    killer.join(timeout=10)
    assert killer.error is None and killer.killed_pid, killer.error

    records = read_records(tmp_path / "run" / "progress.jsonl")
    before = [r for r in records if r["resumed_from"] < 0]
    after = [r for r in records if r["resumed_from"] >= 0]
    resumed = before[-1]["step"]            # the latest checkpoint when the worker died
    assert resumed >= killer.seen_step >= 60 and after, [r["step"] for r in records]
    assert {r["resumed_from"] for r in after} == {resumed}
    assert after[-1]["epoch"] == 3 and summary["final_metrics"]["epoch"] == 3
    assert summary["final_metrics"]["step"] == after[-1]["step"]

    # Weights and optimizer came back: the first window after the restart trains on from
    # the checkpoint's loss, far below a fresh model's (the first window of the run).
    fresh, at_checkpoint = before[0]["train_loss"], before[-1]["train_loss"]
    assert after[0]["train_loss"] < min(0.5 * fresh, 1.5 * at_checkpoint), \
        (fresh, at_checkpoint, after[0]["train_loss"])
    # So did the history: the checkpoint's records, then the restarted group's.
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [r["step"] for r in history] == [r["step"] for r in before + after]

    # The data position came back too: across the crash, every epoch saw every example once.
    seen = defaultdict(list)
    for report in committed_audit(tmp_path / "audit" / "examples.jsonl", before, after):
        for entry in report:
            seen[entry["epoch"]].extend(entry["ids"])
    assert sorted(seen) == [0, 1, 2]
    assert all(len(ids) == len(set(ids)) == TRAIN_PAIRS for ids in seen.values())


def committed_audit(path, before, after) -> list[list[dict]]:
    """The audit's entries grouped by report (one entry per rank), leaving out the report
    the killed group had written (rank 0 writes before reporting) but never completed."""
    reports: list[list[dict]] = []
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if entry["rank"] == 0:
            reports.append([])
        reports[-1].append(entry)
    kept = reports[:len(before)] + reports[len(reports) - len(after):]
    assert len(reports) - len(kept) <= 1, [r[0]["step"] for r in reports]
    assert [r[0]["step"] for r in kept] == [r["step"] for r in before + after]
    return kept


def test_rerun_after_the_driver_died_resumes(ray_cluster, toy_data, tmp_path):
    # Checkpoints go through a pyarrow URI, as they would to s3:// on a real cluster.
    # The driver dies after the first report (epoch 1); the rerun trains on to epoch 3.
    config = toy_config(tmp_path / "c.yaml", toy_data, epochs=3, ray={"workers": 2})
    out, run_name, storage = tmp_path / "run", "driver-dies", f"file://{tmp_path}/storage"
    driver = subprocess.Popen(
        [sys.executable, "jobs/train.py", "--config", str(config), "--out", str(out),
         "--address", ray_cluster.address, "--run-name", run_name, "--storage-path", storage],
        cwd=REPO_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines_until(driver.stdout, "s2s-train: step", timeout=180)   # a checkpoint exists
    finally:
        driver.kill()
        driver.wait(timeout=60)
    cfg, ray_cfg = load_ray_config(config)
    summary = train_on_ray(cfg, ray_cfg.override(run_name=run_name, storage_path=storage), out)
    records = read_records(out / "progress.jsonl")
    first_attempt = [r for r in records if r["resumed_from"] < 0]
    rerun = [r for r in records if r["resumed_from"] >= 0]
    assert first_attempt and first_attempt[-1]["epoch"] < 3
    assert rerun[0]["resumed_from"] >= first_attempt[0]["step"] > 0
    assert rerun[-1]["epoch"] == 3 and summary["epochs"] == 3
    assert (tmp_path / "storage" / run_name / "s2s_vocab" / "vocab.spm").is_file()
