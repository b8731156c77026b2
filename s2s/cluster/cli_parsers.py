"""`s2s cluster up | status | env | down`: a local Ray cluster whose autoscaler adds and
removes worker nodes (raylets on 127.0.0.1, Ray's fake multi-node provider).

    s2s cluster up --worker-cpus 2 --max-workers 3 --idle-timeout 30
    eval "$(s2s cluster env)"          # RAY_ADDRESS & co. for drivers, `ray status`, `ray job submit`
    s2s serve --config cluster/serve/toy.yaml --address auto
    s2s cluster status                 # nodes, resources, pending demand
    s2s cluster down

Parsers only: the handlers import what they need, so `s2s translate` never pays for Ray.
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path
from typing import Callable

from .config import DEFAULT_DIR


def register(sub) -> None:
    cluster = sub.add_parser("cluster", help="a local autoscaling Ray cluster (fake multi-node)")
    actions = cluster.add_subparsers(dest="cluster_cmd", required=True)
    up = actions.add_parser("up", help="start the head and its autoscaler (no-op when running)")
    up.add_argument("--head-cpus", type=int, help="CPUs of the head node (default 1)")
    up.add_argument("--worker-cpus", type=int, help="CPUs of each worker node (default 2)")
    up.add_argument("--max-workers", type=int, help="most worker nodes at once (default 3)")
    up.add_argument("--idle-timeout", type=float, dest="idle_timeout_s", metavar="SECONDS",
                    help="seconds a worker node may idle before it is removed (default 30)")
    up.add_argument("--object-store-mb", type=int, help="object store of each node (default 200)")
    up.add_argument("--port", type=int, help="GCS port, the cluster's address (default 6391)")
    up.add_argument("--dashboard-port", type=int, help="dashboard and Jobs API port (default 8266)")
    up.set_defaults(func=up_command)
    status = actions.add_parser("status", help="nodes, resources and pending demand")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(func=status_command)
    env = actions.add_parser("env", help="print `export` lines that point Ray clients at the cluster")
    env.set_defaults(func=env_command)
    down = actions.add_parser("down", help="stop every process the cluster started")
    down.set_defaults(func=down_command)
    for parser in (up, status, env, down):
        parser.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                            help="state directory: pid, config, head log (default .ray/cluster)")


def _error(message: str, code: int) -> int:
    print(f"s2s: error: {message}", file=sys.stderr)
    return code


def _cluster_errors(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A ClusterError (start failed, state unreadable, head unreachable) is one line, exit 1."""
    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        from .local import ClusterError

        try:
            return command(args)
        except ClusterError as err:
            return _error(str(err), 1)
    return run


@_cluster_errors
def up_command(args: argparse.Namespace) -> int:
    from .config import LocalClusterConfig
    from .local import start

    cfg = LocalClusterConfig().override(
        head_cpus=args.head_cpus, worker_cpus=args.worker_cpus, max_workers=args.max_workers,
        idle_timeout_s=args.idle_timeout_s, object_store_mb=args.object_store_mb, port=args.port,
        dashboard_port=args.dashboard_port)
    state, started = start(cfg, args.dir)
    c = state.config
    print(f"s2s cluster: {'up' if started else 'already running'} (pid {state.pid}): head {c.address} "
          f"with {c.head_cpus} CPU; worker nodes of {c.worker_cpus} CPUs are added on demand "
          f"(at most {c.max_workers}) and removed after {c.idle_timeout_s:g} s idle")
    if not started and c != cfg:
        print("  (it runs with the settings it was started with; `s2s cluster down` first to change them)")
    dir_flag = "" if args.dir == DEFAULT_DIR else f" --dir {args.dir}"
    print(f"  dashboard and Jobs API: {c.dashboard_url}\n"
          f"  connect: eval \"$(s2s cluster env{dir_flag})\", then `s2s serve --address auto ...`, "
          f"`ray job submit -- python jobs/train.py ...`")
    return 0


@_cluster_errors
def status_command(args: argparse.Namespace) -> int:
    from .local import running_state
    from .status import autoscaler_report, format_nodes, status_record

    state = running_state(args.dir)
    if state is None:
        if args.json:
            print(json.dumps({"running": False}))
        else:
            print(f"s2s cluster: not running (state directory {args.dir})")
        return 3
    record = status_record(state)
    if args.json:
        print(json.dumps(record))
        return 0
    print(f"s2s cluster: running (pid {state.pid}), address {record['address']}, "
          f"dashboard {record['dashboard']}\n\n{format_nodes(record['nodes'])}\n")
    print(autoscaler_report(state.config))
    return 0


@_cluster_errors
def env_command(args: argparse.Namespace) -> int:
    from .local import client_env, running_state

    state = running_state(args.dir)
    if state is None:
        return _error(f"no cluster running (state directory {args.dir}); start one with `s2s cluster up`", 3)
    for key, value in client_env(state.config).items():
        print(f"export {key}={value}")
    return 0


@_cluster_errors
def down_command(args: argparse.Namespace) -> int:
    from .local import stop

    print("s2s cluster: stopped" if stop(args.dir) else "s2s cluster: not running")
    return 0
