"""`s2s serve --config FILE`: run a Serve config file's streaming applications from this process
until Ctrl-C (or for --duration seconds), then delete them (each ingress drains and commits)."""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import DEFAULT_LOADER, StreamConfig, StreamConfigError, load_serve_file, stream_config_from_dict

log = logging.getLogger(__name__)

BUILDER = "s2s.stream.app:app_builder"
STATS_EVERY_S = 10.0


@dataclass(frozen=True)
class AppSpec:
    name: str
    config: StreamConfig


def read_apps(path: str | Path) -> list[AppSpec]:
    """The s2s applications of a Serve config file, validated (no Ray needed)."""
    raw = load_serve_file(path)
    specs = []
    for i, app in enumerate(raw["applications"]):
        if not isinstance(app, dict) or app.get("import_path") != BUILDER:
            raise StreamConfigError(f"{path}: applications[{i}].import_path must be {BUILDER}")
        if app.get("deployments"):
            raise StreamConfigError(f"{path}: applications[{i}].deployments overrides are not read by "
                                    "`s2s serve`; set replicas and resources in args instead")
        config = stream_config_from_dict(app.get("args") or {}, source=path, where=f"applications[{i}].args")
        specs.append(AppSpec(app.get("name") or f"s2s-{i}", config))
    return specs


def with_model_root(spec: AppSpec, root: str | Path) -> AppSpec:
    """Relative checkpoint paths made absolute under ``root``; each must exist.

    A Ray job's working dir is an upload without git-ignored files (runs/ among them), so a
    job names where the models really are."""
    routes = []
    for route in spec.config.routes:
        model = Path(route.model)
        if route.loader == DEFAULT_LOADER and not model.is_absolute():
            model = Path(root).resolve() / model
            if not model.is_dir():
                raise FileNotFoundError(f"route {route.name}: checkpoint {model} not found")
        routes.append(route.replace(model=str(model)))
    return dataclasses.replace(spec, config=spec.config.replace(routes=tuple(routes)))


def deploy(specs: list[AppSpec]) -> None:
    """serve.run every application (blocks until each is running)."""
    from ray import serve

    from .app import build_app

    serve.start(proxy_location="Disabled")  # the apps are fed by Kafka, not HTTP
    for spec in specs:
        serve.run(build_app(spec.config), name=spec.name, route_prefix=None)
        log.info("application %s running: %s", spec.name, _describe(spec.config))


def delete(specs: list[AppSpec]) -> None:
    """Delete the applications; each ingress drains and commits before it stops."""
    from ray import serve

    for spec in specs:
        serve.delete(spec.name)


def app_stats(name: str) -> list[dict[str, Any]]:
    """Counters of every ingress replica of application ``name`` (a dead one's are gone)."""
    from ray import serve

    from .names import INGRESS_NAME

    handle = serve.get_deployment_handle(INGRESS_NAME, app_name=name)
    return handle.broadcast("stats").results(timeout_s=30, return_exceptions=True)


def _describe(config: StreamConfig) -> str:
    return "; ".join(f"{r.input_topic} -> {r.name} ({r.model}) -> {r.output_topic}" for r in config.routes)


def replicas_at_normal_priority() -> None:
    """Start the workers of a Ray started here at nice 0, unless the user chose otherwise.

    Ray starts workers at nice 15 so that its own daemons stay responsive. On a machine that
    runs the stream, the replicas are the work: at nice 15 a busy broker or Kafka client on
    the same cores takes the CPU from the decoder.
    """
    os.environ.setdefault("RAY_worker_niceness", "0")


def run_local(path: str | Path, duration_s: float | None, address: str, stop: threading.Event | None = None) -> int:
    """Start (or join) Ray, deploy, log counters until stopped, delete the apps, clean up."""
    import ray
    from ray import serve

    specs = read_apps(path)
    stop = stop or threading.Event()
    if address == "local":
        replicas_at_normal_priority()
    ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        with stop_on_signals(stop):  # after ray.init, which installs a SIGTERM handler of its own
            deploy(specs)
            _wait(specs, duration_s, stop)
    except KeyboardInterrupt:  # a second Ctrl-C before the wait returned
        log.info("interrupted: draining")
    finally:
        delete(specs)
        if address == "local":
            serve.shutdown()
        ray.shutdown()
    return 0


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM set ``stop`` rather than raise where the main thread happens to be.

    A KeyboardInterrupt raised inside a Serve handle call (the counters logged every
    STATS_EVERY_S) is swallowed there, and the server ran on as if never asked to stop. After
    the first signal the previous handlers are back, so a second Ctrl-C interrupts the drain.
    Only the main thread may install handlers; elsewhere ``stop`` alone ends the wait."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}  # filled one signal at a time: a signal in between restores what is installed

    def request_stop(signum, _frame) -> None:
        log.info("%s: draining, then deleting the applications", signal.Signals(signum).name)
        stop.set()
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, request_stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait(specs: list[AppSpec], duration_s: float | None, stop: threading.Event) -> None:
    deadline = None if duration_s is None else time.monotonic() + duration_s
    while not stop.is_set():
        left = STATS_EVERY_S if deadline is None else min(STATS_EVERY_S, deadline - time.monotonic())
        if left <= 0 or stop.wait(left):
            return
        for spec in specs:
            log.info("%s: %s", spec.name, app_stats(spec.name))
