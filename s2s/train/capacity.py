"""How many training workers a Ray cluster can hold: now, or once its autoscaler has grown it.

`s2s train --ray` asks this before it starts a run, so that a run that can never be placed
fails at once with the numbers instead of waiting forever. What the cluster may grow to
comes from the first of these that the cluster has:

1. the GCS `ClusterConfig` record (node groups with their resources and max counts): what
   Ray Train's own pre-start check reads. Managed platforms and `s2s cluster up` write it;
   nothing in the open-source autoscaler of Ray 2.60 does (no caller of
   `ReportClusterConfig`), so a `ray up` or KubeRay cluster has none.
2. the launcher config on the head, `~/ray_bootstrap_config.yaml`: `ray up` copies it there
   and starts the head's autoscaler with it, so a driver on the head (`ray job submit`) reads
   the node types the autoscaler plans with.
3. nothing: only the live nodes are known. If an autoscaler runs (its status is in the
   GCS), the cluster may still grow, so the rule is a warning with the numbers, not a
   refusal; Ray Train's own wait for the workers' resources, bounded by
   `ray.resource_wait_s`, decides. Without an autoscaler the live nodes are all there is.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

from ..config import TrainingConfig
from .config import RayTrainConfig

log = logging.getLogger(__name__)

BOOTSTRAP_CONFIG = Path("~/ray_bootstrap_config.yaml")   # where `ray up` puts the head's config
UNBOUNDED_NODES = 10_000     # a node group whose max count is -1 (no limit)
READONLY_NODE_TYPE_PREFIX = "node_"  # Ray's readonly provider: format_readonly_node_type(node_id)


class ClusterTooSmall(ValueError):
    """The run asks for more than the cluster has, so it would wait forever."""


@dataclass(frozen=True)
class NodeType:
    """One kind of node the autoscaler may launch, and how many of it at most."""
    name: str
    resources: dict[str, float]
    max_count: int


@dataclass(frozen=True)
class Capacity:
    """The live nodes' resources and, where the cluster says, what it may grow to
    (`node_types` empty: the bounds are unknown, or, without an autoscaler, the live nodes)."""
    nodes: list[dict[str, float]]
    node_types: tuple[NodeType, ...] = ()
    head: dict[str, float] | None = None      # the head, outside the worker-node cap
    max_worker_nodes: int | None = None       # the launcher's global max_workers
    autoscaling: bool = False                 # an autoscaler runs, bounds known or not
    source: str = "live nodes"

    @property
    def bounded(self) -> bool:
        """Whether it is known how far the cluster may grow (or that it cannot)."""
        return bool(self.node_types) or not self.autoscaling

    def may_have(self, key: str) -> bool:
        """The resource exists now or on a node type the autoscaler may launch (min 0 too)."""
        return (any(n.get(key, 0) > 0 for n in self.nodes)
                or any(t.resources.get(key, 0) > 0 and t.max_count > 0 for t in self.node_types))

    def largest_cluster(self, cpus: float, gpus: float) -> list[dict[str, float]]:
        """The nodes of the fully grown cluster that hold the most such workers."""
        if not self.node_types:
            return self.nodes
        extra = [t.resources for t in self.node_types
                 for _ in range(min(t.max_count, UNBOUNDED_NODES))]
        extra.sort(key=lambda res: per_node(res, cpus, gpus), reverse=True)
        if self.max_worker_nodes is not None:
            extra = extra[:self.max_worker_nodes]
        return ([self.head] if self.head is not None else []) + extra

    def describe(self) -> str:
        live = (f"{len(self.nodes)} live nodes, {_sum(self.nodes, 'CPU'):g} CPUs, "
                f"{_sum(self.nodes, 'GPU'):g} GPUs")
        if self.node_types:
            grown = self.largest_cluster(1.0, 0.0)
            return (f"{live}; may grow to {len(grown)} nodes, {_sum(grown, 'CPU'):g} CPUs, "
                    f"{_sum(grown, 'GPU'):g} GPUs ({self.source})")
        if self.autoscaling:
            return f"{live}; an autoscaler runs but nothing says how far it may grow"
        return f"{live}; no autoscaler"


def _sum(nodes: Sequence[dict[str, float]], key: str) -> float:
    return sum(n.get(key, 0) for n in nodes)


# ------------------------------------------------------------------------------ the rules

def per_node(res: dict[str, float], cpus: float, gpus: float) -> int:
    """How many workers of `cpus` CPUs (+ `gpus` GPUs) one idle node holds."""
    fits = math.floor(res.get("CPU", 0) / cpus + 1e-9) if cpus else math.inf
    if gpus:
        fits = min(fits, math.floor(res.get("GPU", 0) / gpus + 1e-9))
    return int(fits) if fits != math.inf else 1_000_000


def workers_that_fit(nodes: Sequence[dict[str, float]], cpus: float, gpus: float,
                     strategy: str) -> int:
    """How many workers the nodes could ever hold at once (all idle)."""
    counts = [per_node(res, cpus, gpus) for res in nodes]
    if strategy == "STRICT_SPREAD":
        return sum(1 for c in counts if c > 0)
    if strategy == "STRICT_PACK":
        return max(counts, default=0)
    return sum(counts)


def decide_gpu(setting: str | bool, training: TrainingConfig, capacity: Capacity) -> bool:
    """GPU workers when asked, or (auto) when the cluster has or may launch GPU nodes and
    training is not forced onto the CPU."""
    if setting != "auto":
        return bool(setting)
    has_gpu = capacity.may_have("GPU")
    if training.device == "cuda" and not has_gpu and capacity.bounded:
        raise ClusterTooSmall(f"training.device is cuda but the cluster has no GPUs and no GPU "
                              f"node type ({capacity.describe()})")
    return (has_gpu or training.device == "cuda") and training.device != "cpu"


def check_capacity(ray_cfg: RayTrainConfig, use_gpu: bool, capacity: Capacity) -> str | None:
    """Refuse, with the numbers, a run that cannot ever be placed; a warning (returned and
    logged) when it does not fit the live nodes and nothing says whether it ever will."""
    gpus = 1.0 if use_gpu else 0.0
    cpus = ray_cfg.cpus_per_worker
    asked = (f"{ray_cfg.workers} workers requested ({cpus:g} CPU{' + 1 GPU' if use_gpu else ''} "
             f"each, {ray_cfg.placement_strategy})")
    fit = workers_that_fit(capacity.largest_cluster(cpus, gpus), cpus, gpus,
                           ray_cfg.placement_strategy)
    if ray_cfg.workers <= fit:
        return None
    if capacity.bounded:
        raise ClusterTooSmall(f"{asked}, but the cluster ({capacity.describe()}) can hold at "
                              f"most {fit}")
    warning = (f"{asked}; the live nodes hold {fit} ({capacity.describe()}): waiting up to "
               f"{ray_cfg.resource_wait_s:g} s (ray.resource_wait_s) for the autoscaler to add "
               "nodes")
    log.warning(warning)
    return warning


# ------------------------------------------------------------------------------ the sources

def node_types_from_cluster_config(record: Any) -> tuple[NodeType, ...]:
    """The node groups of a GCS `ClusterConfig` (autoscaler_pb2) record."""
    return tuple(NodeType(g.name, dict(g.resources),
                          UNBOUNDED_NODES if g.max_count < 0 else int(g.max_count))
                 for g in record.node_group_configs)


def launcher_bounds(config: dict[str, Any]) -> tuple[dict[str, float], tuple[NodeType, ...], int]:
    """(head resources, worker node types, global max_workers) of a cluster-launcher config.

    Every node type must spell out its resources (as ray_config.yaml does); a config that
    leaves them to the provider raises KeyError, and its bounds count as unknown."""
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    workers = tuple(NodeType(name, {k: float(v) for k, v in t["resources"].items()},
                             int(t.get("max_workers", config["max_workers"])))
                    for name, t in types.items())
    return ({k: float(v) for k, v in head["resources"].items()}, workers,
            int(config["max_workers"]))


def read_launcher_config(path: Path = BOOTSTRAP_CONFIG) -> dict[str, Any] | None:
    path = path.expanduser()
    if not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        log.warning("cannot read the launcher config %s (%s); its bounds are unknown", path, err)
        return None


def autoscaler_runs(status_json: bytes | None, v2_flag: bytes | None) -> bool:
    """An autoscaler that can add nodes is active: v2 announces itself in the GCS, v1's monitor
    writes a report of its autoscaler. A head started without an autoscaling config (`ray
    start --head`, `ray.cluster_utils.Cluster`) also writes one, from Ray's readonly provider,
    which launches nothing and names each node type after its node id."""
    if v2_flag == b"1":
        return True
    if not status_json:
        return False
    try:
        report = json.loads(status_json).get("autoscaler_report")
    except ValueError:
        return False
    if not report:
        return False
    types = [*(report.get("active_nodes") or {}), *(report.get("idle_nodes") or {})]
    return not (types and all(t.startswith(READONLY_NODE_TYPE_PREFIX) for t in types))


def capacity_of_cluster(bootstrap_config: Path = BOOTSTRAP_CONFIG) -> Capacity:
    """Ask the connected cluster (ray.init done) what it holds and may grow to."""
    import ray
    from ray._private import ray_constants
    from ray._private.state import state
    from ray._raylet import GCS_AUTOSCALER_STATE_NAMESPACE, GCS_AUTOSCALER_V2_ENABLED_KEY
    from ray.experimental.internal_kv import _internal_kv_get

    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    autoscaling = autoscaler_runs(
        _internal_kv_get(ray_constants.DEBUG_AUTOSCALING_STATUS),
        _internal_kv_get(GCS_AUTOSCALER_V2_ENABLED_KEY,
                         namespace=GCS_AUTOSCALER_STATE_NAMESPACE))
    record = state.get_cluster_config()
    if record is not None and record.node_group_configs:
        return Capacity(nodes, node_types_from_cluster_config(record), autoscaling=True,
                        source="the GCS ClusterConfig record")
    launcher = read_launcher_config(bootstrap_config)
    if launcher is not None and autoscaling:
        try:
            head, types, max_workers = launcher_bounds(launcher)
        except (KeyError, TypeError, ValueError) as err:
            log.warning("%s names no resources for every node type (%s); its bounds are "
                        "unknown", bootstrap_config, err)
        else:
            return Capacity(nodes, types, head=head, max_worker_nodes=max_workers,
                            autoscaling=True, source=str(bootstrap_config))
    return Capacity(nodes, autoscaling=autoscaling)
