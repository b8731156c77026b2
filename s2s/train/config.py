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

The core keeps this section as a plain dict (`ExperimentConfig.ray`), so it needs no Ray
types; this module validates it into RayTrainConfig, with the same messages (unknown keys by
name, s2s/settings.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt

from ..config import ExperimentConfig
from ..settings import ConfigModel, build, read_yaml

PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


class RayTrainConfig(ConfigModel):
    section: ClassVar[str] = "ray"

    workers: PositiveInt = 1
    cpus_per_worker: PositiveFloat = 1.0
    use_gpu: Literal["auto", True, False] = "auto"
    placement_strategy: Literal[PLACEMENT_STRATEGIES] = "PACK"
    checkpoint_every: NonNegativeInt = 0
    num_to_keep: PositiveInt = 2
    max_failures: int = Field(3, ge=-1)
    storage_path: str = ""
    run_name: str = ""
    record_examples_dir: str = ""
    resource_wait_s: PositiveFloat = 900.0

    def report_every(self, eval_every: int) -> int:
        """Steps between mid-epoch reports (dev score + checkpoint)."""
        return self.checkpoint_every or eval_every


def split_config(raw: Any, source: str | Path | None = None) -> tuple[ExperimentConfig, RayTrainConfig]:
    """(core config, ray section) from a parsed YAML mapping; `source` names its file in
    messages. The core config keeps no copy of the section."""
    experiment = build(ExperimentConfig, raw, source=source).validate(source)
    ray = build(RayTrainConfig, experiment.ray, source=source)
    return experiment.replace(ray={}), ray


def load_ray_config(path: str | Path) -> tuple[ExperimentConfig, RayTrainConfig]:
    """Like `s2s.config.load_config`, but also validates the optional `ray:` section."""
    return split_config(read_yaml(path), source=path)
