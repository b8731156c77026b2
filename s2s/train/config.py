"""The `ray:` section of an experiment YAML: how a run is spread over a Ray cluster.

    ray:
      workers: 2               # Ray Train workers (DDP ranks)
      cpus_per_worker: 1       # CPUs reserved per worker; also its torch thread count
      use_gpu: auto            # auto (GPU workers when the cluster has GPUs) | true | false
      placement_strategy: PACK # PACK | SPREAD | STRICT_PACK | STRICT_SPREAD
      checkpoint_every: 0      # steps between mid-epoch checkpoints; 0 = training.eval_every
      num_to_keep: 2           # checkpoints kept besides the latest (the best by dev score)
      max_failures: 3          # worker-group restarts from the last checkpoint; -1 = forever
      storage_path: ""         # checkpoint storage: local dir or pyarrow URI; "" = OUT/ray
      run_name: ""             # "" = the experiment name; the same name resumes the run
      record_examples_dir: ""  # audit: each worker writes the example ids it trained on
      resource_wait_s: 900     # how long the workers may wait for their CPUs/GPUs (the
                               # autoscaler adding nodes) before the run fails with the numbers

The core config loader knows nothing of Ray, so this module strips the section before
handing the rest to `s2s.config.from_dict`; unknown keys fail the same way, by name.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from ..config import ConfigError, ExperimentConfig, from_dict, read_yaml

PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


@dataclass(frozen=True)
class RayTrainConfig:
    workers: int = 1
    cpus_per_worker: float = 1.0
    use_gpu: str | bool = "auto"
    placement_strategy: str = "PACK"
    checkpoint_every: int = 0
    num_to_keep: int = 2
    max_failures: int = 3
    storage_path: str = ""
    run_name: str = ""
    record_examples_dir: str = ""
    resource_wait_s: float = 900.0

    def validate(self) -> "RayTrainConfig":
        _check(isinstance(self.workers, int) and self.workers >= 1, "ray.workers", self.workers)
        _check(self.cpus_per_worker > 0, "ray.cpus_per_worker", self.cpus_per_worker)
        _check(self.use_gpu in ("auto", True, False), "ray.use_gpu", self.use_gpu)
        _check(self.placement_strategy in PLACEMENT_STRATEGIES, "ray.placement_strategy",
               self.placement_strategy)
        _check(self.checkpoint_every >= 0, "ray.checkpoint_every", self.checkpoint_every)
        _check(self.num_to_keep >= 1, "ray.num_to_keep", self.num_to_keep)
        _check(self.max_failures >= -1, "ray.max_failures", self.max_failures)
        _check(isinstance(self.resource_wait_s, (int, float)) and self.resource_wait_s > 0,
               "ray.resource_wait_s", self.resource_wait_s)
        return self

    def override(self, **values: Any) -> "RayTrainConfig":
        """A copy with the given values (None means 'not given on the command line')."""
        given = {k: v for k, v in values.items() if v is not None}
        return dataclasses.replace(self, **given).validate()

    def report_every(self, eval_every: int) -> int:
        """Steps between mid-epoch reports (dev score + checkpoint)."""
        return self.checkpoint_every or eval_every


def _check(ok: bool, key: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"invalid value for {key}: {value!r}")


def split_config(raw: dict[str, Any]) -> tuple[ExperimentConfig, RayTrainConfig]:
    """(core config, ray section) from a parsed YAML mapping."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a config file must be a mapping, got {type(raw).__name__}")
    raw = dict(raw)
    ray_section = raw.pop("ray", None)
    experiment = from_dict(ExperimentConfig, raw).validate()
    return experiment, from_dict(RayTrainConfig, ray_section, "ray.").validate()


def load_ray_config(path: str | Path) -> tuple[ExperimentConfig, RayTrainConfig]:
    """Like `s2s.config.load_config`, but also validates the optional `ray:` section."""
    return split_config(read_yaml(path))
