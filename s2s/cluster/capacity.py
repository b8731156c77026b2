"""Tell Ray how far the local cluster may grow.

Ray reads an autoscaling cluster's bounds from a `ClusterConfig` record in the GCS (Ray
Train's and Ray Data's pre-start checks, and `s2s train --ray` through s2s/train/capacity.py,
which reads its node groups). Managed platforms write it; the open-source autoscaler that
`s2s cluster up` runs does not (nor does `ray up`'s or KubeRay's), so `up` writes it itself:
a run that could never fit is then refused at once. Without the record, `s2s train --ray`
warns and lets Ray Train wait, bounded, for the autoscaler (tests/integration/cluster/
test_train_autoscaling.py withdraws it to run that path).
"""
from __future__ import annotations

from .config import HEAD_NODE_TYPE, WORKER_NODE_TYPE, LocalClusterConfig


def publish_capacity(cfg: LocalClusterConfig) -> None:
    """Write the node types (resources, min/max counts) as the cluster's ClusterConfig."""
    from ray._raylet import (GCS_AUTOSCALER_CLUSTER_CONFIG_KEY, GCS_AUTOSCALER_STATE_NAMESPACE,
                             GcsClient)
    from ray.core.generated import autoscaler_pb2

    config = autoscaler_pb2.ClusterConfig()
    groups = ((HEAD_NODE_TYPE, cfg.head_cpus, 1, 1), (WORKER_NODE_TYPE, cfg.worker_cpus, 0, cfg.max_workers))
    for name, cpus, min_count, max_count in groups:
        group = config.node_group_configs.add(name=name, min_count=min_count, max_count=max_count)
        group.resources["CPU"] = cpus
    GcsClient(address=cfg.address).internal_kv_put(
        GCS_AUTOSCALER_CLUSTER_CONFIG_KEY.encode(), config.SerializeToString(), True,
        GCS_AUTOSCALER_STATE_NAMESPACE.encode())
