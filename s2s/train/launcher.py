"""Driver side of a Ray Train run: `s2s train --ray` and `jobs/train.py` end up here.

    s2s train --ray --config configs/toy-reverse.yaml --out runs/toy-ray --workers 2

Checks the data and what the cluster holds or may grow to (capacity.py), learns (or
reloads) the vocabulary, builds the tokenized Ray Dataset, runs a `TorchTrainer` whose workers run `rank.train_fn_per_worker`, then
exports the best checkpoint by dev score in the core format:

    OUT/best/                 the model (`s2s translate --model OUT/best`)
    OUT/history.json          one record per report
    OUT/training_curve.png
    OUT/progress.jsonl        every report as Ray Train delivered it (incl. restarts)
    STORAGE/RUN_NAME/         Ray Train's checkpoints (+ s2s_vocab/); STORAGE = OUT/ray
                              unless ray.storage_path / --storage-path says otherwise

Running again with the same run name and storage resumes from the latest checkpoint.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import ray
import ray.train
from ray.data import DataContext
from ray.train import (CheckpointConfig, ControllerError, DataConfig, FailureConfig,
                       LoggingConfig, RunConfig, ScalingConfig, UserCallback)
from ray.train.torch import TorchTrainer
from ray.train.v2._internal.constants import WORKER_GROUP_START_TIMEOUT_S_ENV_VAR
from ray.train.v2._internal.exceptions import WorkerGroupStartupTimeoutError

from ..checkpoint import load_checkpoint, load_trainer_state, save_checkpoint
from ..config import ExperimentConfig
from ..plotting import write_history
from .capacity import ClusterTooSmall, capacity_of_cluster, check_capacity, decide_gpu
from .config import RayTrainConfig
from .data import (RunStorage, check_data_paths, dev_pairs, learn_and_store_vocabularies,
                   read_pairs, resolve_path, training_dataset)
from .job import TrainJob
from .progress import append_record, format_report, summarize_reports
from .rank import train_fn_per_worker

log = logging.getLogger(__name__)

SCORE_METRIC = "dev_score"   # the task's selection metric (BLEU for translation)


def train_on_ray(cfg: ExperimentConfig, ray_cfg: RayTrainConfig, out_dir: str | Path,
                 address: str | None = None) -> dict[str, Any]:
    out_dir = Path(out_dir).resolve()
    check_data_paths(cfg.data)
    started_here = connect(address)
    try:
        capacity = capacity_of_cluster()
        use_gpu = decide_gpu(ray_cfg.use_gpu, cfg.training, capacity)
        check_capacity(ray_cfg, use_gpu, capacity)
        out_dir.mkdir(parents=True, exist_ok=True)
        ray_cfg = with_run_defaults(ray_cfg, cfg, out_dir)
        job, dataset = prepare_job(cfg, ray_cfg)
        result = fit_within_resource_wait(build_trainer(job, dataset, use_gpu, out_dir),
                                          ray_cfg, use_gpu)
        return export_result(result, out_dir, ray_cfg)
    finally:
        if started_here:
            ray.shutdown()


def connect(address: str | None) -> bool:
    """Join the given cluster (or RAY_ADDRESS's, or a new local one); True if we joined."""
    # One progress line per report is the driver's output; Ray Data's bars would bury it.
    DataContext.get_current().enable_progress_bars = False
    if ray.is_initialized():
        return False
    ray.init(address=address)
    return True


def with_run_defaults(ray_cfg: RayTrainConfig, cfg: ExperimentConfig,
                      out_dir: Path) -> RayTrainConfig:
    """Fill in run name and storage, and make local paths absolute: workers run
    elsewhere (another directory, maybe another node)."""
    return ray_cfg.override(
        run_name=ray_cfg.run_name or cfg.name,
        storage_path=resolve_path(ray_cfg.storage_path or str(out_dir / "ray")),
        record_examples_dir=(resolve_path(ray_cfg.record_examples_dir)
                             if ray_cfg.record_examples_dir else None))


# --------------------------------------------------------------------------- resource wait

class ResourceWaitTimeout(ClusterTooSmall):
    """The workers' resources did not come within ray.resource_wait_s."""


def fit_within_resource_wait(trainer: TorchTrainer, ray_cfg: RayTrainConfig,
                             use_gpu: bool) -> ray.train.Result:
    """`trainer.fit()`, where every wait for the worker group's resources (Ray Train's
    placement-group wait, during which the autoscaler adds nodes) lasts at most
    ray.resource_wait_s and ends the run with the numbers. Ray Train's own default is 60 s
    per try, retried forever (`controller_failure_limit` -1); the driver's value of the
    variable is what Ray Train hands its controller."""
    previous = os.environ.get(WORKER_GROUP_START_TIMEOUT_S_ENV_VAR)
    os.environ[WORKER_GROUP_START_TIMEOUT_S_ENV_VAR] = f"{ray_cfg.resource_wait_s:g}"
    try:
        return trainer.fit()
    except ControllerError as err:
        if not isinstance(err.controller_failure, WorkerGroupStartupTimeoutError):
            raise
        raise ResourceWaitTimeout(
            f"{ray_cfg.workers} workers ({ray_cfg.cpus_per_worker:g} CPU"
            f"{' + 1 GPU' if use_gpu else ''} each, {ray_cfg.placement_strategy}) got no "
            f"resources within {ray_cfg.resource_wait_s:g} s (ray.resource_wait_s); the cluster "
            f"now: {capacity_of_cluster().describe()}") from err
    finally:
        if previous is None:
            os.environ.pop(WORKER_GROUP_START_TIMEOUT_S_ENV_VAR, None)
        else:
            os.environ[WORKER_GROUP_START_TIMEOUT_S_ENV_VAR] = previous


# --------------------------------------------------------------------------- the trainer

class ExactlyOnceDataConfig(DataConfig):
    """Ray Train's default split (`equal=True`) drops rows to even out the shards; this
    one keeps every row (shards may differ by a block; the workers even out steps)."""

    def configure(self, datasets, world_size, worker_handles, worker_node_ids, **kwargs):
        output: list[dict[str, Any]] = [{} for _ in range(world_size)]
        for name, ds in datasets.items():
            ds = ds.copy(ds)
            ds.context.execution_options = self.default_ingest_options()
            for rank, split in enumerate(ds.streaming_split(world_size, equal=False,
                                                            locality_hints=worker_node_ids)):
                output[rank][name] = split
        return output


class ProgressCallback(UserCallback):
    """Runs in the Train controller (on the driver's node, its output forwarded to the
    driver): one line per report, and the same record appended to OUT/progress.jsonl."""

    def __init__(self, log_path: str):
        self.log_path = log_path

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint) -> None:
        record = summarize_reports(metrics)
        record["checkpoint"] = checkpoint.path if checkpoint is not None else None
        print(format_report(record), flush=True)
        append_record(self.log_path, record)


def prepare_job(cfg: ExperimentConfig, ray_cfg: RayTrainConfig) -> tuple[TrainJob, Any]:
    """The workers' payload (vocabulary stored with the run, dev pairs) and the tokenized
    training Dataset."""
    storage = RunStorage(ray_cfg.storage_path, ray_cfg.run_name)
    train_path = resolve_path(cfg.data.train)
    stored = storage.load_vocabularies()
    train_table = read_pairs(train_path) if stored is None else None
    if stored is not None:
        log.info("run %s: reusing its stored vocabulary", ray_cfg.run_name)
    src, tgt = stored or learn_and_store_vocabularies(cfg, storage, train_table)
    dev = dev_pairs(cfg, train_table)
    job = TrainJob(cfg, ray_cfg, src, tgt, dev.column("src").to_pylist(),
                   dev.column("tgt").to_pylist())
    return job, training_dataset(train_path, src, tgt, cfg.data, ray_cfg.workers)


def build_trainer(job: TrainJob, dataset: Any, use_gpu: bool, out_dir: Path) -> TorchTrainer:
    ray_cfg = job.ray
    log.info("run %s: %d workers (%s), checkpoints in %s/%s", ray_cfg.run_name,
             ray_cfg.workers, "GPU" if use_gpu else "CPU", ray_cfg.storage_path, ray_cfg.run_name)
    return TorchTrainer(
        train_fn_per_worker,
        train_loop_config=job.to_loop_config(),
        scaling_config=ScalingConfig(
            num_workers=ray_cfg.workers, use_gpu=use_gpu,
            resources_per_worker={"CPU": ray_cfg.cpus_per_worker, **({"GPU": 1} if use_gpu else {})},
            placement_strategy=ray_cfg.placement_strategy),
        run_config=RunConfig(
            name=ray_cfg.run_name, storage_path=ray_cfg.storage_path,
            # A worker group that cannot start (its resources did not come within
            # ray.resource_wait_s) ends the run instead of being retried forever.
            failure_config=FailureConfig(max_failures=ray_cfg.max_failures,
                                         controller_failure_limit=0),
            # Ray always keeps the latest checkpoint too; scoring keeps the best alive.
            checkpoint_config=CheckpointConfig(num_to_keep=ray_cfg.num_to_keep,
                                               checkpoint_score_attribute=SCORE_METRIC,
                                               checkpoint_score_order="max"),
            callbacks=[ProgressCallback(str(out_dir / "progress.jsonl"))],
            logging_config=LoggingConfig(log_level="WARNING")),
        datasets={"train": dataset},
        dataset_config=ExactlyOnceDataConfig())


# --------------------------------------------------------------------------- export

def export_result(result: ray.train.Result, out_dir: Path,
                  ray_cfg: RayTrainConfig) -> dict[str, Any]:
    """Best checkpoint -> OUT/best (core format, no trainer state); history + curve."""
    if result.checkpoint is None:
        raise RuntimeError("the run reported no checkpoint (is training.epochs 0?)")
    best = result.get_best_checkpoint(SCORE_METRIC, "max")
    with best.as_directory() as path:
        loaded = load_checkpoint(path)
        save_checkpoint(out_dir / "best", loaded.model, loaded.src_vocab, loaded.tgt_vocab,
                        loaded.config, loaded.manifest.get("metrics"))
    with result.checkpoint.as_directory() as path:
        history = load_trainer_state(path)["progress"]["history"]
    write_history(history, out_dir)
    final = result.metrics or {}
    return {"run_name": ray_cfg.run_name, "storage": f"{ray_cfg.storage_path}/{ray_cfg.run_name}",
            "steps": final.get("step", 0), "epochs": final.get("epoch", 0),
            "best_score": final.get("best_score", float("nan")),
            "tokens_per_s": final.get("tokens_per_s", 0.0),
            "best": str(out_dir / "best"), "final_metrics": final, "history": history}
