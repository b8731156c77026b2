"""Start, inspect and stop the local autoscaling cluster behind `s2s cluster ...`.

`up` runs `ray start --head --block --autoscaling-config ...` in a session of its own, with
`RAY_FAKE_CLUSTER=1` so the head's autoscaler may use the fake multi-node provider. Every
process of the cluster (head services, autoscaler, the raylets it adds as worker nodes, their
workers) stays in that session, so `down` stops exactly those and nothing else on the
machine. The state (pid, config, head log, autoscaler config) lives in one directory,
`.ray/cluster/` by default.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..localhost import free_ports
from .capacity import publish_capacity
from .config import DEFAULT_DIR, LocalClusterConfig, autoscaler_config, cluster_config_from_dict

STATE_FILE, LOG_FILE, AUTOSCALER_FILE = "state.json", "head.log", "autoscaler.yaml"
READY_MARKER = "block forever"          # `ray start --block` logs it once the head is up
START_TIMEOUT_S = 180                   # a loaded 2-core machine needs ~20-60 s
STOP_TIMEOUT_S = 30

# Environment for anything talking to the cluster. Ray rewrites a 127.0.0.1 address to the
# machine's outward IP unless multi-node support is off, and the head's autoscaler would
# also start its worker raylets on that IP; with it off both stay on loopback. The token
# check is off too: the cluster listens on 127.0.0.1 only.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}

# Ray's auxiliary ports have fixed defaults that collide with any other Ray on the machine.
AUX_PORT_OPTIONS = ("--ray-client-server-port", "--dashboard-agent-listen-port",
                    "--dashboard-agent-grpc-port", "--runtime-env-agent-port",
                    "--metrics-export-port", "--node-manager-port", "--object-manager-port")


class ClusterError(RuntimeError):
    """The cluster could not be started or reached; the message says why."""


@dataclass(frozen=True)
class ClusterState:
    pid: int                    # the `ray start --block` process, leader of the session
    temp_dir: str               # Ray's session files and logs
    config: LocalClusterConfig

    @staticmethod
    def read(state_dir: Path) -> "ClusterState | None":
        path = Path(state_dir) / STATE_FILE
        if not path.is_file():
            return None
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return ClusterState(int(raw["pid"]), str(raw["temp_dir"]), cluster_config_from_dict(raw["config"]))
        except (ValueError, KeyError, TypeError) as err:
            raise ClusterError(f"unreadable state file {path} ({err}); stop what it started by hand, "
                               "then delete it") from err

    def write(self, state_dir: Path) -> None:
        record = {"pid": self.pid, "temp_dir": self.temp_dir, "config": self.config.to_dict()}
        (Path(state_dir) / STATE_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def client_env(cfg: LocalClusterConfig) -> dict[str, str]:
    """What a driver, `ray status` or `ray job submit` needs to reach the cluster."""
    return {"RAY_ADDRESS": cfg.address, "RAY_API_SERVER_ADDRESS": cfg.dashboard_url, **LOOPBACK_ENV}


def running_state(state_dir: Path) -> ClusterState | None:
    """The recorded cluster if its head process is still alive."""
    state = ClusterState.read(state_dir)
    return state if state is not None and _head_alive(state.pid) else None


def _head_alive(pid: int) -> bool:
    """`pid` still leads its session and is a `ray start` of ours (pids get reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"--autoscaling-config" in cmdline and pid in session_pids(pid)


# --------------------------------------------------------------------------------------- up

def start(cfg: LocalClusterConfig, state_dir: Path = DEFAULT_DIR) -> tuple[ClusterState, bool]:
    """Start the cluster unless it runs already; (state, started now)."""
    state_dir = Path(state_dir)
    current = running_state(state_dir)
    if current is not None:
        return current, False
    stop(state_dir)                     # leftovers of a head that died
    _check_ports_free(cfg)
    state_dir.mkdir(parents=True, exist_ok=True)
    config_path = state_dir / AUTOSCALER_FILE
    config_path.write_text(yaml.safe_dump(autoscaler_config(cfg), sort_keys=False), encoding="utf-8")
    temp_dir = _temp_dir(state_dir)
    with open(state_dir / LOG_FILE, "w", encoding="utf-8") as log:
        head = subprocess.Popen(_head_command(cfg, config_path, temp_dir), stdout=log,
                                stderr=subprocess.STDOUT, env=_head_env(), start_new_session=True)
    state = ClusterState(head.pid, temp_dir, cfg)
    state.write(state_dir)
    try:
        _wait_ready(head, state_dir / LOG_FILE)
        publish_capacity(cfg)
    except BaseException:               # Ctrl-C included: leave nothing half-started
        stop(state_dir)
        raise
    return state, True


def _check_ports_free(cfg: LocalClusterConfig) -> None:
    for flag, port in (("--port", cfg.port), ("--dashboard-port", cfg.dashboard_port)):
        with socket.socket() as probe:
            # SO_REUSEADDR: connections of a cluster stopped a moment ago (TIME_WAIT) do not
            # block Ray's servers, only a listener does.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                raise ClusterError(f"port {port} on 127.0.0.1 is in use; pick another with {flag}") from None


def _temp_dir(state_dir: Path) -> str:
    # Ray's socket paths must stay short, so the session files go under /tmp, named per state dir.
    digest = hashlib.md5(str(state_dir.resolve()).encode()).hexdigest()[:8]
    return f"/tmp/s2s-cluster-{digest}"


def _head_command(cfg: LocalClusterConfig, config_path: Path, temp_dir: str) -> list[str]:
    aux = [str(item) for pair in zip(AUX_PORT_OPTIONS, free_ports(len(AUX_PORT_OPTIONS)))
           for item in pair]
    return [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
            "--port", str(cfg.port), "--node-ip-address", "127.0.0.1",
            "--num-cpus", str(cfg.head_cpus), *aux,
            "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
            "--dashboard-port", str(cfg.dashboard_port),
            "--object-store-memory", str(cfg.object_store_mb * 1024 * 1024),
            "--temp-dir", temp_dir, "--disable-usage-stats",
            "--autoscaling-config", str(config_path.resolve())]


def _head_env() -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    return {**os.environ, **LOOPBACK_ENV,
            "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",  # job drivers: this python
            "RAY_FAKE_CLUSTER": "1",              # the fake provider refuses to run without it
            "AUTOSCALER_UPDATE_INTERVAL_S": "1",  # react within a second, not Ray's default 5
            "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}


def _wait_ready(head: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while READY_MARKER not in log_path.read_text(encoding="utf-8", errors="replace"):
        if head.poll() is not None or time.monotonic() > deadline:
            tail = "".join(log_path.read_text(encoding="utf-8", errors="replace").splitlines(True)[-30:])
            raise ClusterError(f"the Ray head did not start (log {log_path}):\n{tail}")
        time.sleep(0.5)


# ------------------------------------------------------------------------------------- down

def stop(state_dir: Path = DEFAULT_DIR) -> bool:
    """Stop every process of the recorded cluster; False when there was nothing to stop."""
    state = ClusterState.read(Path(state_dir))
    if state is None:
        return False
    found = _stop_session(state.pid)
    (Path(state_dir) / STATE_FILE).unlink(missing_ok=True)
    shutil.rmtree(state.temp_dir, ignore_errors=True)
    return found


def _stop_session(sid: int) -> bool:
    if sid in session_pids(sid) and not _head_alive(sid):
        return False                    # the pid was reused: that session is someone else's
    found = bool(session_pids(sid))
    if _head_alive(sid):
        # `ray start --block` stops its own node's processes on SIGTERM ...
        os.kill(sid, signal.SIGTERM)
        _wait_until_gone(lambda: _head_alive(sid), STOP_TIMEOUT_S)
    # ... but not the worker raylets the autoscaler started, nor anything stuck draining.
    _signal_session(sid, signal.SIGTERM, grace_s=10)
    _signal_session(sid, signal.SIGKILL, grace_s=5)
    return found


def session_pids(sid: int) -> list[int]:
    """Live (not zombie) processes of session `sid`, from /proc/PID/stat."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid pgrp session ...": comm may hold spaces, so split after ")".
            state, _ppid, _pgrp, session = stat.read_text().rpartition(")")[2].split()[:4]
        except (OSError, ValueError):
            continue                    # exited while we looked
        if int(session) == sid and state != "Z":
            pids.append(int(stat.parent.name))
    return pids


def _signal_session(sid: int, sig: signal.Signals, grace_s: float) -> None:
    for pid in session_pids(sid):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            continue
    _wait_until_gone(lambda: bool(session_pids(sid)), grace_s)


def _wait_until_gone(alive, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while alive() and time.monotonic() < deadline:
        time.sleep(0.5)
