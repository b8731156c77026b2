"""What `s2s cluster up` starts, and the autoscaler config it hands Ray. No Ray imports here.

The autoscaler reads a full cluster-launcher config (the same schema as ray_config.yaml)
whose provider is `fake_multinode`: Ray's provider that "launches" a node by starting one
more raylet on this machine. The installed Ray wheel ships no defaults file for that
provider, so every section the autoscaler reads is written out here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import Field, NonNegativeInt, PositiveFloat, model_validator

from ..settings import ConfigModel, build, invalid

DEFAULT_DIR = Path(".ray") / "cluster"   # state of `s2s cluster` (git-ignored .ray/)

# The fake provider tags the head it finds with this node type; the config must use it.
HEAD_NODE_TYPE = "ray.head.default"
WORKER_NODE_TYPE = "cpu_worker"   # the name ray_config.yaml gives its CPU workers

# Sections the autoscaler reads although a fake node runs none of them.
_EMPTY_LAUNCHER_SECTIONS: dict[str, Any] = {
    "docker": {}, "file_mounts": {}, "cluster_synced_files": [],
    "file_mounts_sync_continuously": False, "rsync_exclude": [], "rsync_filter": [],
    "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
    "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
}
Port = Annotated[int, Field(gt=0, lt=65536)]


class LocalClusterConfig(ConfigModel):
    section: ClassVar[str] = "cluster"

    head_cpus: NonNegativeInt = 1   # small, so a little demand already needs a worker node
    worker_cpus: Annotated[int, Field(ge=1)] = 2     # CPUs of each worker node the autoscaler adds
    max_workers: Annotated[int, Field(ge=1)] = 3     # upper bound on worker nodes
    idle_timeout_s: PositiveFloat = 30.0             # a worker node idle this long is removed
    object_store_mb: Annotated[int, Field(ge=80)] = 200  # per node; Ray's default (30% of RAM) is far too much here
    port: Port = 6391               # GCS port: the address drivers and `--address` use
    dashboard_port: Port = 8266     # dashboard + Jobs API (`ray job submit --address`)

    @model_validator(mode="after")
    def ports_differ(self) -> "LocalClusterConfig":
        if self.port == self.dashboard_port:
            raise invalid(f"must differ from port ({self.port})", key="dashboard_port")
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"


def cluster_config_from_dict(values: dict[str, Any]) -> LocalClusterConfig:
    return build(LocalClusterConfig, values)


def autoscaler_config(cfg: LocalClusterConfig) -> dict[str, Any]:
    """The cluster-launcher config the head's autoscaler (monitor.py) runs with."""
    object_store = cfg.object_store_mb * 1024 * 1024
    return {
        "cluster_name": "s2s-local",
        "max_workers": cfg.max_workers,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": cfg.idle_timeout_s / 60,
        "provider": {
            "type": "fake_multinode",
            # Workers join this GCS; without it the provider guesses the machine's IP:6379.
            "gcs_address": cfg.address,
            "use_node_id_as_ip": True,
            # No SSH, no setup commands: a fake node is up as soon as its raylet is.
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
        },
        "auth": {"ssh_user": "ray"},
        "available_node_types": {
            HEAD_NODE_TYPE: {"resources": {"CPU": cfg.head_cpus}, "node_config": {},
                             "max_workers": 0},
            WORKER_NODE_TYPE: {"resources": {"CPU": cfg.worker_cpus,
                                             "object_store_memory": object_store},
                               "node_config": {}, "min_workers": 0,
                               "max_workers": cfg.max_workers},
        },
        "head_node_type": HEAD_NODE_TYPE,
        **_EMPTY_LAUNCHER_SECTIONS,
    }
