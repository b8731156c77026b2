"""A private Ray instance with Serve, for integration tests and benchmarks."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def private_serve(runtime_env: dict | None = None) -> Iterator[None]:
    """A Ray instance of this process only (its own temp dir), with Serve and no HTTP proxy:
    what the benchmarks and the integration tests deploy the streaming app on."""
    import ray
    from ray import serve

    ray_dir = tempfile.mkdtemp(prefix="s2s-ray-", dir="/tmp")  # short: Ray's socket paths are capped
    try:
        ray.init(address="local", num_cpus=4, include_dashboard=False, object_store_memory=300 * 1024**2,
                 _temp_dir=ray_dir, log_to_driver=False, runtime_env=runtime_env)
        serve.start(proxy_location="Disabled")
        yield
    finally:
        if ray.is_initialized():
            serve.shutdown()
            ray.shutdown()
        if os.environ.get("S2S_KEEP_RAY_DIR"):  # the replicas' logs, to read after a failure
            print(f"Ray's temp dir with the replicas' logs kept: {ray_dir}")
        else:
            shutil.rmtree(ray_dir, ignore_errors=True)


def replica_stderr_tails(app_name: str, lines: int = 60) -> str:
    """The last ``lines`` of every replica process of ``app_name`` that wrote to stderr, where
    Serve's own log lines and s2s's warnings (rewinds, poll-loop errors) land. For failures
    that show only in the full suite: the Ray temp dir is gone by the time anyone looks."""
    import ray

    node = ray._private.worker._global_node  # the only handle on the session's log directory
    if node is None:
        return "(no Ray node in this process)"
    marker = f":actor_name:ServeReplica:{app_name}:"
    tails = []
    for path in sorted(Path(node.get_logs_dir_path()).glob("worker-*.err")):
        with open(path, errors="replace") as file:
            head = file.read(500)  # Ray writes the actor's name at the top of its worker's files
            if marker not in head:
                continue
            text = head + file.read()
        actor = head[head.index(marker) + len(":actor_name:"):].split("\n", 1)[0]
        tails.append(f"--- {actor} ({path.name}), last {lines} lines ---\n" + "\n".join(text.splitlines()[-lines:]))
    return "\n".join(tails) or f"(no replica of {app_name} wrote to stderr)"
