"""Helpers of the local-cluster integration tests: drive `s2s cluster ...` as a user does.

The cluster runs on its own ports with its state in a directory of the test's; `started`
brings it up and always takes it down.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from s2s.localhost import free_ports

CLI_TIMEOUT_S = 240     # `up` waits for the head (~20 s idle, a minute or more on a busy machine)
SCALE_TIMEOUT_S = 120   # fake worker nodes are local raylets: they start and stop in seconds


def s2s_cluster(*args: str, state_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "s2s.cli", "cluster", *args, "--dir", str(state_dir)],
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S)


@contextmanager
def started(state_dir: Path, head_cpus: int, worker_cpus: int, max_workers: int,
            idle_timeout_s: float) -> Iterator[subprocess.CompletedProcess]:
    """`s2s cluster up` with these sizes on free ports (yields its output), then `down`."""
    port, dashboard_port = free_ports(2)
    up = s2s_cluster("up", "--head-cpus", str(head_cpus), "--worker-cpus", str(worker_cpus),
                     "--max-workers", str(max_workers), "--idle-timeout", str(idle_timeout_s),
                     "--port", str(port), "--dashboard-port", str(dashboard_port), state_dir=state_dir)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "up (pid " in up.stdout and f"127.0.0.1:{port}" in up.stdout, up.stdout
        yield up
    finally:
        s2s_cluster("down", state_dir=state_dir)


def client_env(state_dir: Path) -> dict[str, str]:
    """This process's environment plus what `s2s cluster env` exports."""
    result = s2s_cluster("env", state_dir=state_dir)
    assert result.returncode == 0, result.stderr
    exports = dict(line.removeprefix("export ").split("=", 1) for line in result.stdout.splitlines())
    return {**os.environ, **exports}


def alive_nodes(state_dir: Path) -> list[dict]:
    result = s2s_cluster("status", "--json", state_dir=state_dir)
    assert result.returncode == 0, result.stderr
    return [n for n in json.loads(result.stdout)["nodes"] if n["state"] == "ALIVE"]


def wait_for_nodes(state_dir: Path, count: int) -> list[dict]:
    deadline = time.monotonic() + SCALE_TIMEOUT_S
    while len(nodes := alive_nodes(state_dir)) != count:
        assert time.monotonic() < deadline, f"still {len(nodes)} alive nodes, expected {count}: {nodes}"
        time.sleep(2)
    return nodes
