"""`s2s cluster up|status|env|down` on Ray's fake multi-node provider: the autoscaler adds a
worker node when demand exceeds the head's CPUs and removes it once it has idled.

The cluster runs on its own ports, with its state in a temporary directory, and `down`
stops it; the demand comes from a real Ray driver (tests/integration/cluster/demand.py).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from s2s.cluster.config import HEAD_NODE_TYPE, WORKER_NODE_TYPE
from s2s.cluster.local import session_pids
from tests.integration.train.helpers import lines_until

from .helpers import SCALE_TIMEOUT_S, alive_nodes, client_env, s2s_cluster, started, wait_for_nodes

pytestmark = [pytest.mark.slow, pytest.mark.integration]

DEMAND = Path(__file__).with_name("demand.py")
HEAD_CPUS, WORKER_CPUS, MAX_WORKERS, IDLE_TIMEOUT_S = 1, 2, 2, 10


@pytest.fixture(scope="module")
def cluster_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One cluster for the module (start-up is the slow part); the last test stops it."""
    state_dir = tmp_path_factory.mktemp("cluster")
    with started(state_dir, HEAD_CPUS, WORKER_CPUS, MAX_WORKERS, IDLE_TIMEOUT_S):
        yield state_dir


def test_demand_adds_a_worker_node_and_idling_removes_it(cluster_dir: Path):
    head = wait_for_nodes(cluster_dir, 1)
    assert head[0]["type"] == HEAD_NODE_TYPE and head[0]["cpus"] == HEAD_CPUS

    # Three 1-CPU actors cannot fit on a 1-CPU head: the autoscaler must add a node.
    driver = subprocess.Popen([sys.executable, str(DEMAND), "3"], env=client_env(cluster_dir),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    try:
        lines = lines_until(driver.stdout, "placed ", timeout=SCALE_TIMEOUT_S)
        placed = lines[-1].split()[1:]
        nodes = alive_nodes(cluster_dir)
    finally:
        driver.stdin.close()
        driver.wait(timeout=60)
    # What Ray Train's (and `s2s train --ray`'s) capacity checks read: the bound, not today's nodes.
    capacity = next(json.loads(line.split(" ", 1)[1]) for line in lines if line.startswith("capacity "))
    assert capacity == {"CPU": HEAD_CPUS + MAX_WORKERS * WORKER_CPUS}
    workers = [n for n in nodes if n["type"] == WORKER_NODE_TYPE]
    assert workers and all(n["cpus"] == WORKER_CPUS for n in workers), nodes
    assert {n["node_id"] for n in workers} & set(placed), (placed, nodes)

    # The driver is gone, so is the demand: after the idle timeout only the head is left.
    started_idle = time.monotonic()
    assert wait_for_nodes(cluster_dir, 1)[0]["type"] == HEAD_NODE_TYPE
    assert time.monotonic() - started_idle >= IDLE_TIMEOUT_S * 0.5


def test_up_and_down_are_idempotent_and_down_leaves_nothing(cluster_dir: Path):
    again = s2s_cluster("up", state_dir=cluster_dir)
    assert again.returncode == 0 and "already running" in again.stdout, again.stdout + again.stderr
    pid = json.loads(s2s_cluster("status", "--json", state_dir=cluster_dir).stdout)["pid"]
    assert session_pids(pid)

    assert s2s_cluster("down", state_dir=cluster_dir).stdout.strip() == "s2s cluster: stopped"
    assert session_pids(pid) == []
    assert s2s_cluster("down", state_dir=cluster_dir).stdout.strip() == "s2s cluster: not running"
    stopped = s2s_cluster("status", "--json", state_dir=cluster_dir)
    assert stopped.returncode == 3 and json.loads(stopped.stdout) == {"running": False}
