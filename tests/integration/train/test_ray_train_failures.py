"""Fault tolerance: a killed worker and a killed driver both resume from the last checkpoint."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict

import pytest

from s2s.train.config import load_ray_config
from s2s.train.launcher import train_on_ray
from s2s.train.progress import read_records
from s2s.train.rank import FAIL_AT_STEP_ENV

from .helpers import REPO_DIR, TRAIN_PAIRS, lines_until, toy_config

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(420)]


def test_killed_worker_resumes_from_the_last_checkpoint(ray_cluster, toy_data, tmp_path,
                                                        monkeypatch):
    # ~27 steps per epoch: reports at 10 and 20 (mid-epoch checkpoints) and the epoch end.
    # The last worker exits hard at step 15, after the step-10 checkpoint was committed.
    config = toy_config(tmp_path / "c.yaml", toy_data, epochs=1,
                        ray={"workers": 2, "checkpoint_every": 10, "max_failures": 1,
                             "record_examples_dir": str(tmp_path / "audit")})
    monkeypatch.setenv(FAIL_AT_STEP_ENV, "15")
    summary = train_on_ray(*load_ray_config(config), tmp_path / "run")

    records = read_records(tmp_path / "run" / "progress.jsonl")
    before = [r for r in records if r["resumed_from"] < 0]
    after = [r for r in records if r["resumed_from"] >= 0]
    assert [r["step"] for r in before] == [10]
    assert {r["resumed_from"] for r in after} == {10}        # the checkpoint, not step 0
    assert after[0]["step"] == 20 and after[-1]["epoch"] == 1
    assert summary["final_metrics"]["epoch"] == 1 and "dev_bleu" in summary["final_metrics"]

    # The data position came back too: across the crash, epoch 0 saw every example once.
    seen = defaultdict(list)
    for line in (tmp_path / "audit" / "examples.jsonl").read_text().splitlines():
        entry = json.loads(line)
        seen[entry["epoch"]].extend(entry["ids"])
    assert len(seen[0]) == len(set(seen[0])) == TRAIN_PAIRS


def test_rerun_after_the_driver_died_resumes(ray_cluster, toy_data, tmp_path):
    # Checkpoints go through a pyarrow URI, as they would to s3:// on a real cluster.
    config = toy_config(tmp_path / "c.yaml", toy_data, epochs=6, ray={"workers": 2})
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
    assert first_attempt and first_attempt[-1]["epoch"] < 6
    assert rerun[0]["resumed_from"] >= first_attempt[0]["step"] > 0
    assert rerun[-1]["epoch"] == 6 and summary["epochs"] == 6
    assert (tmp_path / "storage" / run_name / "s2s_vocab" / "vocab.spm").is_file()
