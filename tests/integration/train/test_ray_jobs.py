"""`jobs/train.py` submitted through the Ray Jobs API to a head started with `ray start`."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from s2s.localhost import free_ports

from s2s.prepare.toy import prepare_toy

from .helpers import REPO_DIR, TRAIN_PAIRS, lines_until

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(420)]

PORT_OPTIONS = ("--port", "--dashboard-port", "--ray-client-server-port",
                "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
                "--runtime-env-agent-port", "--metrics-export-port", "--node-manager-port",
                "--object-manager-port")


@pytest.fixture(scope="module")
def jobs_head() -> Iterator[str]:
    """A single-node head with the dashboard (which serves the Jobs API) on 127.0.0.1.

    Every port is chosen here and the temp dir is private, so it can run beside other
    Ray clusters on the machine. `ray start --block` stops all its processes on SIGTERM.
    Token auth is off: a private loopback cluster, and the Jobs client then needs no token.
    """
    temp_dir = tempfile.mkdtemp(prefix="s2s-train-jobs-", dir="/tmp")   # short: socket paths
    ports = dict(zip(PORT_OPTIONS, free_ports(len(PORT_OPTIONS))))
    command = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block",
               "--num-cpus", "2", "--object-store-memory", str(200 * 1024 * 1024),
               "--temp-dir", temp_dir, "--include-dashboard", "true",
               "--node-ip-address", "127.0.0.1", "--dashboard-host", "127.0.0.1",
               "--disable-usage-stats",
               *[str(part) for option, port in ports.items() for part in (option, port)]]
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
           "RAY_AUTH_MODE": "disabled",
           # The job is over when the head stops: skip the SIGTERM drain (up to 30 s).
           "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    head = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    try:
        lines_until(head.stdout, "block forever", timeout=180)
        yield f"http://127.0.0.1:{ports['--dashboard-port']}"
    finally:
        _stop_head(head)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _stop_head(head: subprocess.Popen) -> None:
    head.send_signal(signal.SIGTERM)
    try:
        head.wait(timeout=90)
    except subprocess.TimeoutExpired:
        head.kill()
        head.wait(timeout=30)


def test_submitted_training_job_succeeds_and_logs_progress(jobs_head, tmp_path):
    from ray.job_submission import JobStatus, JobSubmissionClient

    # The shipped toy config, cut to 2 epochs (the job's plumbing is tested here, not the
    # learning); its relative data paths resolve under --data-root, since the uploaded working
    # dir has no data/ (git-ignored).
    prepare_toy(tmp_path / "data" / "toy-reverse", "reverse", train=TRAIN_PAIRS, dev=100, test=10)
    cfg = yaml.safe_load((REPO_DIR / "configs" / "toy-reverse.yaml").read_text())
    cfg["training"]["epochs"] = 2
    config = tmp_path / "toy-reverse.yaml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    out = tmp_path / "run"
    client = JobSubmissionClient(jobs_head)
    job_id = client.submit_job(
        entrypoint=(f"{sys.executable} jobs/train.py --config {config} "
                    f"--workers 2 --data-root {tmp_path} --out {out}"),
        runtime_env={"working_dir": str(REPO_DIR)})
    status = wait_for_job(client, job_id, timeout=300)
    logs = client.get_job_logs(job_id)
    assert status == JobStatus.SUCCEEDED, logs[-3000:]
    progress = [line for line in logs.splitlines() if "s2s-train: step" in line]
    assert progress and all(" tok/s " in line and "dev_bleu=" in line for line in progress)
    assert "s2s-train: done: best dev score" in logs
    assert (out / "best" / "model.safetensors").is_file()


def wait_for_job(client, job_id: str, timeout: float):
    from ray.job_submission import JobStatus

    deadline = time.monotonic() + timeout
    status = client.get_job_status(job_id)
    while not status.is_terminal() and time.monotonic() < deadline:
        time.sleep(1)      # polling an HTTP API: there is no completion event to wait on
        status = client.get_job_status(job_id)
    if not status.is_terminal():
        client.stop_job(job_id)
        pytest.fail(f"job {job_id} still {status} after {timeout:.0f}s")
    return JobStatus(status)
