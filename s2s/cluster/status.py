"""What `s2s cluster status` shows: the nodes (state API) and the autoscaler's view (`ray status`)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from .config import HEAD_NODE_TYPE, WORKER_NODE_TYPE, LocalClusterConfig
from .local import ClusterError, ClusterState, client_env

RAY_STATUS_TIMEOUT_S = 60


def list_cluster_nodes(cfg: LocalClusterConfig) -> list[dict[str, Any]]:
    """Every node the cluster has had (alive ones first), as plain dicts."""
    from ray.util.state import list_nodes

    nodes = [{"node_id": n.node_id, "type": HEAD_NODE_TYPE if n.is_head_node else WORKER_NODE_TYPE,
              "state": n.state, "cpus": n.resources_total.get("CPU", 0.0), "ip": n.node_ip}
             for n in list_nodes(address=cfg.dashboard_url, limit=1000, raise_on_missing_output=False)]
    return sorted(nodes, key=lambda n: (n["state"] != "ALIVE", n["type"] != HEAD_NODE_TYPE, n["node_id"]))


def autoscaler_report(cfg: LocalClusterConfig) -> str:
    """`ray status`: nodes per type, pending nodes, resource usage and pending demands."""
    try:
        result = subprocess.run([str(Path(sys.executable).parent / "ray"), "status", "--address", cfg.address],
                                env={**os.environ, **client_env(cfg)}, capture_output=True, text=True,
                                timeout=RAY_STATUS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"`ray status` did not answer within {RAY_STATUS_TIMEOUT_S} s"
    return result.stdout if result.returncode == 0 else f"`ray status` failed:\n{result.stderr[-2000:]}"


def status_record(state: ClusterState) -> dict[str, Any]:
    cfg = state.config
    try:
        nodes = list_cluster_nodes(cfg)
    except Exception as err:    # the state API raises its own and connection errors alike
        raise ClusterError(f"the head (pid {state.pid}) runs but its dashboard {cfg.dashboard_url} "
                           f"does not answer: {err}") from err
    return {"running": True, "pid": state.pid, "address": cfg.address, "dashboard": cfg.dashboard_url,
            "nodes": nodes}


def format_nodes(nodes: list[dict[str, Any]]) -> str:
    rows = [("NODE", "TYPE", "STATE", "CPU")] + [
        (n["node_id"], n["type"], n["state"], f"{n['cpus']:g}") for n in nodes]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)
