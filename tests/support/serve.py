"""A private Ray instance with Serve, for integration tests and benchmarks."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator


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
