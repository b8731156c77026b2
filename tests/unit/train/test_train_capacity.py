"""Capacity rules of `s2s train --ray`: what a cluster holds now or may grow to, when a run
is refused, when it only warns, and when GPU workers are chosen."""
import json
import logging
from pathlib import Path

import pytest
import yaml

from s2s.config import TrainingConfig
from s2s.train.capacity import (Capacity, ClusterTooSmall, NodeType, autoscaler_runs,
                                check_capacity, decide_gpu, launcher_bounds,
                                node_types_from_cluster_config, read_launcher_config,
                                workers_that_fit)
from s2s.train.config import RayTrainConfig

RAY_CONFIG = Path(__file__).resolve().parents[3] / "ray_config.yaml"
NODES = [{"CPU": 2.0}, {"CPU": 2.0}]
AUTO = TrainingConfig(device="auto")


def ray_up_cluster(live=({"CPU": 0.0},)) -> Capacity:
    """A `ray up ray_config.yaml` cluster as its head's bootstrap config describes it."""
    head, types, max_workers = launcher_bounds(yaml.safe_load(RAY_CONFIG.read_text()))
    return Capacity(list(live), types, head=head, max_worker_nodes=max_workers,
                    autoscaling=True, source="~/ray_bootstrap_config.yaml")


@pytest.mark.parametrize("strategy, cpus, expected", [("PACK", 1, 4), ("SPREAD", 2, 2),
                                                      ("STRICT_SPREAD", 1, 2),
                                                      ("STRICT_PACK", 1, 2), ("PACK", 3, 0)])
def test_workers_that_fit(strategy, cpus, expected):
    assert workers_that_fit(NODES, cpus, 0, strategy) == expected


def test_gpu_workers_need_a_gpu_each():
    assert workers_that_fit([{"CPU": 8, "GPU": 1}, {"CPU": 8}], 1, 1, "PACK") == 1


def test_a_fixed_cluster_refuses_too_many_workers_with_the_numbers():
    with pytest.raises(ClusterTooSmall, match=r"5 workers requested \(1 CPU each, PACK\), but the "
                       r"cluster \(2 live nodes, 4 CPUs, 0 GPUs; no autoscaler\) can hold at most 4"):
        check_capacity(RayTrainConfig(workers=5), False, Capacity(NODES))


def test_gpu_node_type_at_min_zero_makes_auto_pick_gpus():
    cluster = ray_up_cluster()          # only the CPU-less head is alive; gpu_worker min 0
    assert decide_gpu("auto", AUTO, cluster) is True
    assert decide_gpu("auto", TrainingConfig(device="cpu"), cluster) is False
    check_capacity(RayTrainConfig(workers=2), True, cluster)   # gpu_worker max_workers: 2
    with pytest.raises(ClusterTooSmall, match=r"3 workers requested \(1 CPU \+ 1 GPU each, PACK\)"
                       r".*may grow to 11 nodes, 136 CPUs, 2 GPUs.*can hold at most 2"):
        check_capacity(RayTrainConfig(workers=3), True, cluster)


def test_cpu_workers_beyond_the_live_nodes_fit_the_node_types():
    cluster = ray_up_cluster()
    check_capacity(RayTrainConfig(workers=128, cpus_per_worker=1), False, cluster)
    with pytest.raises(ClusterTooSmall, match="can hold at most 8"):   # 8 cpu_worker nodes
        check_capacity(RayTrainConfig(workers=9, placement_strategy="STRICT_SPREAD",
                                      cpus_per_worker=16), False, cluster)


def test_the_global_max_workers_caps_the_node_types():
    types = (NodeType("small", {"CPU": 2.0}, 5), NodeType("big", {"CPU": 8.0}, 5))
    cluster = Capacity([{"CPU": 1.0}], types, head={"CPU": 1.0}, max_worker_nodes=2,
                       autoscaling=True)
    # The two nodes that hold the most are two big ones: 16 CPUs, plus the head's 1.
    assert workers_that_fit(cluster.largest_cluster(1, 0), 1, 0, "PACK") == 17


def test_no_bounds_known_warns_and_does_not_refuse(caplog):
    cluster = Capacity([{"CPU": 1.0}], autoscaling=True)
    with caplog.at_level(logging.WARNING):
        warning = check_capacity(RayTrainConfig(workers=6, resource_wait_s=30), True, cluster)
    assert warning == caplog.messages[-1]
    assert warning.startswith("6 workers requested (1 CPU + 1 GPU each, PACK); the live nodes "
                              "hold 0 (1 live nodes, 1 CPUs, 0 GPUs; an autoscaler runs but "
                              "nothing says how far it may grow): waiting up to 30 s")
    assert check_capacity(RayTrainConfig(workers=1), False, cluster) is None   # fits now


def test_no_bounds_known_does_not_refuse_gpus_either():
    cluster = Capacity([{"CPU": 4.0}], autoscaling=True)
    assert decide_gpu("auto", AUTO, cluster) is False     # nothing says a GPU node may come
    assert decide_gpu("auto", TrainingConfig(device="cuda"), cluster) is True
    assert decide_gpu(True, AUTO, cluster) is True
    with pytest.raises(ClusterTooSmall, match="no GPUs and no GPU node type"):
        decide_gpu("auto", TrainingConfig(device="cuda"), Capacity([{"CPU": 4.0}]))


def test_live_gpus_count_on_a_fixed_cluster():
    assert decide_gpu("auto", AUTO, Capacity([{"CPU": 4.0, "GPU": 1.0}])) is True
    assert decide_gpu("auto", AUTO, Capacity([{"CPU": 4.0}])) is False


def test_cluster_config_record_gives_node_types():
    from ray.core.generated import autoscaler_pb2

    record = autoscaler_pb2.ClusterConfig()
    head = record.node_group_configs.add(name="head", min_count=1, max_count=1)
    head.resources["CPU"] = 1
    gpu = record.node_group_configs.add(name="gpu", min_count=0, max_count=-1)
    gpu.resources["GPU"] = 1
    types = node_types_from_cluster_config(record)
    assert [(t.name, t.resources, t.max_count > 1000) for t in types] == [
        ("head", {"CPU": 1.0}, False), ("gpu", {"GPU": 1.0}, True)]
    assert decide_gpu("auto", AUTO, Capacity([{"CPU": 1.0}], types, autoscaling=True)) is True


def test_launcher_config_without_resources_counts_as_unknown(tmp_path):
    config = yaml.safe_load(RAY_CONFIG.read_text())
    del config["available_node_types"]["gpu_worker"]["resources"]
    with pytest.raises(KeyError):
        launcher_bounds(config)
    path = tmp_path / "ray_bootstrap_config.yaml"
    assert read_launcher_config(path) is None
    path.write_text("a: [unclosed")
    assert read_launcher_config(path) is None


def test_autoscaler_is_recognized_by_its_report():
    v1 = json.dumps({"autoscaler_report": {"active_nodes": {}}, "load_metrics_report": {}})
    assert autoscaler_runs(v1.encode(), None) is True
    assert autoscaler_runs(json.dumps({"load_metrics_report": {}}).encode(), None) is False
    assert autoscaler_runs(None, b"1") is True
    # `ray start --head` / ray.cluster_utils.Cluster: the monitor reports through Ray's readonly
    # provider, which can add no node (the report the Ray 2.60 monitor wrote for such a cluster).
    readonly = {"autoscaler_report": {"active_nodes": {"node_04223ef294c01934f36fddd5": 1}, "idle_nodes": None}}
    assert autoscaler_runs(json.dumps(readonly).encode(), b"0") is False
    real = {"autoscaler_report": {"active_nodes": {"head": 1, "cpu_worker": 2}, "idle_nodes": None}}
    assert autoscaler_runs(json.dumps(real).encode(), b"0") is True
    assert autoscaler_runs(None, None) is False and autoscaler_runs(b"{bad", b"0") is False


def test_resource_wait_must_be_positive():
    from s2s.config import ConfigError

    with pytest.raises(ConfigError, match="ray.resource_wait_s"):
        RayTrainConfig(resource_wait_s=0).validate()


def test_ray_trains_wait_is_bounded_and_its_timeout_reads_as_the_numbers(monkeypatch):
    from ray.train import ControllerError
    from ray.train.v2._internal.exceptions import WorkerGroupStartupTimeoutError

    from s2s.train import launcher

    seen = {}

    class NeverPlaced:
        def fit(self):
            seen["timeout"] = launcher.os.environ[launcher.WORKER_GROUP_START_TIMEOUT_S_ENV_VAR]
            raise ControllerError(WorkerGroupStartupTimeoutError(num_workers=6))

    monkeypatch.delenv(launcher.WORKER_GROUP_START_TIMEOUT_S_ENV_VAR, raising=False)
    monkeypatch.setattr(launcher, "capacity_of_cluster",
                        lambda: Capacity([{"CPU": 1.0}, {"CPU": 2.0}], autoscaling=True))
    with pytest.raises(launcher.ResourceWaitTimeout,
                       match=r"^6 workers \(1 CPU each, PACK\) got no resources within 15 s "
                             r"\(ray.resource_wait_s\); the cluster now: 2 live nodes, 3 CPUs"):
        launcher.fit_within_resource_wait(NeverPlaced(), RayTrainConfig(workers=6, resource_wait_s=15),
                                          use_gpu=False)
    assert seen["timeout"] == "15"     # what Ray Train hands its controller
    assert launcher.WORKER_GROUP_START_TIMEOUT_S_ENV_VAR not in launcher.os.environ
