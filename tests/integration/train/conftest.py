"""Fixtures for the Ray Train integration tests.

* `ray_cluster`: a 2-node Ray cluster on this machine (head + 1 worker raylet, 2 CPUs
  each, small object stores, no dashboard), shared by the whole package.
* `toy_data`: a small reverse-task corpus (2,000 training pairs).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s2s.prepare.toy import prepare_toy

from .helpers import TRAIN_PAIRS

NODE_CPUS = 2
OBJECT_STORE_BYTES = 200 * 1024 * 1024


@pytest.fixture(scope="package")
def ray_cluster() -> Iterator[Any]:
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    node = {"num_cpus": NODE_CPUS, "object_store_memory": OBJECT_STORE_BYTES}
    cluster = Cluster(initialize_head=True, connect=True,
                      head_node_args={**node, "include_dashboard": False})
    try:
        cluster.add_node(**node)
        cluster.wait_for_nodes(timeout=120)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture(scope="package")
def toy_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("toy-reverse")
    prepare_toy(out, "reverse", train=TRAIN_PAIRS, dev=100, test=100)
    return out
