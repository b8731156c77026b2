"""`s2s train --ray` grows an autoscaling cluster that does not say how far it may grow.

The local cluster of `s2s cluster up` runs the real autoscaler on Ray's fake multi-node
provider. Its GCS capacity record is withdrawn and the driver's HOME holds no
`~/ray_bootstrap_config.yaml`, so the driver knows what a driver on a `ray up` head without
its bootstrap file or on KubeRay knows: only the live nodes, and that an autoscaler runs.
A run that needs more than the live nodes but fits the node types makes the autoscaler add
a worker node and trains to the end; a run that could never fit fails after
`ray.resource_wait_s`, with the numbers.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from s2s.cluster.config import HEAD_NODE_TYPE
from s2s.prepare.toy import prepare_toy
from tests.integration.train.helpers import toy_config

from .helpers import alive_nodes, client_env, started

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(420)]

# The head holds 1 one-CPU worker; with two 2-CPU worker nodes the cluster holds 5.
HEAD_CPUS, WORKER_CPUS, MAX_WORKERS, IDLE_TIMEOUT_S = 1, 2, 2, 20
GROW_WAIT_S = 150       # node start on a busy 2-core machine (seconds when idle)
NEVER_WAIT_S = 15
TRAIN_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def cluster_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state_dir = tmp_path_factory.mktemp("cluster")
    with started(state_dir, HEAD_CPUS, WORKER_CPUS, MAX_WORKERS, IDLE_TIMEOUT_S):
        withdraw_capacity_record(client_env(state_dir)["RAY_ADDRESS"])
        yield state_dir


def withdraw_capacity_record(address: str) -> None:
    """Delete the ClusterConfig record `s2s cluster up` wrote (`ray up` and KubeRay write none)."""
    from ray._raylet import (GCS_AUTOSCALER_CLUSTER_CONFIG_KEY, GCS_AUTOSCALER_STATE_NAMESPACE,
                             GcsClient)

    client = GcsClient(address=address)
    key, namespace = GCS_AUTOSCALER_CLUSTER_CONFIG_KEY.encode(), GCS_AUTOSCALER_STATE_NAMESPACE.encode()
    client.internal_kv_del(key, False, namespace)
    assert not client.internal_kv_get(key, namespace)


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("toy")
    prepare_toy(out, "reverse", train=400, dev=40, test=40)
    return out


def train(cluster_dir: Path, tmp: Path, toy_dir: Path, workers: int,
          wait_s: float) -> tuple[subprocess.CompletedProcess, float]:
    config = toy_config(tmp / "toy.yaml", toy_dir, ray={"resource_wait_s": wait_s},
                        epochs=1, dev_sentences=40)
    env = {**client_env(cluster_dir), "HOME": str(tmp)}   # no ~/ray_bootstrap_config.yaml
    started_at = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "s2s.cli", "train", "--ray", "--config", str(config),
                          "--out", str(tmp / "run"), "--workers", str(workers)],
                         env=env, capture_output=True, text=True, timeout=TRAIN_TIMEOUT_S)
    return run, time.monotonic() - started_at


def test_workers_beyond_the_live_nodes_make_the_autoscaler_add_one(cluster_dir, toy_dir, tmp_path):
    (head,) = alive_nodes(cluster_dir)
    assert head["type"] == HEAD_NODE_TYPE and head["cpus"] == HEAD_CPUS
    run, _ = train(cluster_dir, tmp_path, toy_dir, workers=2, wait_s=GROW_WAIT_S)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]
    # Warned with the numbers, did not refuse.
    assert ("2 workers requested (1 CPU each, PACK); the live nodes hold 1 (1 live nodes, "
            "1 CPUs, 0 GPUs; an autoscaler runs but nothing says how far it may grow): "
            f"waiting up to {GROW_WAIT_S} s") in run.stderr
    assert "s2s-train: done" in run.stdout
    records = [json.loads(line) for line in (tmp_path / "run" / "progress.jsonl").read_text().splitlines()]
    assert records and records[-1]["epoch"] == 1
    # At least one worker ran on a node the autoscaler added.
    assert {n for r in records for n in r["nodes"]} - {head["node_id"]}, records
    assert (tmp_path / "run" / "best").is_dir()


def test_workers_beyond_every_node_type_fail_after_the_wait_with_the_numbers(cluster_dir, toy_dir,
                                                                             tmp_path):
    run, took = train(cluster_dir, tmp_path, toy_dir, workers=6, wait_s=NEVER_WAIT_S)
    assert run.returncode == 2, run.stdout[-3000:] + run.stderr[-6000:]
    assert (f"s2s: error: 6 workers (1 CPU each, PACK) got no resources within {NEVER_WAIT_S} s "
            "(ray.resource_wait_s); the cluster now: ") in run.stderr, run.stderr[-6000:]
    assert "an autoscaler runs but nothing says how far it may grow" in run.stderr
    # Start-up of the driver and Ray Train, the wait, the shutdown: bounded, not forever.
    assert took < NEVER_WAIT_S + 120, took
