"""The function every Ray Train worker runs: one DDP rank of the one training loop
(`s2s/train_loop.py`), with the Ray seams plugged in.

    feed         this rank's Ray Data shard (`data.ShardFeed`): the epoch's covered example
                 ids are the data position; every rank takes the same number of steps
    ranks        `TorchRanks`: torch.distributed collectives (gloo on CPU, NCCL on GPU),
                 set up by Ray Train; gradients are averaged by DDP
    checkpoints  `RayReports`: at every report (each epoch end and every
                 `ray.checkpoint_every` steps) rank 0 hands Ray Train a checkpoint in the
                 core format whose trainer state also holds every rank's RNG and the seen set
    on_step      `TrainTelemetry`: tokens and tokens/s as Ray metrics

With `training.average_last: N`, rank 0 keeps the weights of its last N reported
checkpoints in memory and, when training ends, writes their average (scored on dev) to
STORAGE/RUN_NAME/averaged; a restarted worker group averages what it reported since.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist

from ..averaging import RecentWeights
from ..checkpoint import load_checkpoint, load_trainer_state, save_checkpoint
from ..model import build_model
from ..subword import resegmenter
from ..train_loop import (Evaluation, StepDone, TrainLoop, build_loop, export_recent_average,
                          resume_from, run_training, trainer_state)
from ..training import rng_state, seed_everything, set_rng_state, set_threads
from .data import RunStorage, ShardFeed, read_shard
from .job import Restored, TrainJob, pack_state, unpack_state
from .telemetry import TrainTelemetry

log = logging.getLogger(__name__)


def train_fn_per_worker(config: dict[str, Any]) -> None:
    _quiet_report_log()
    run_training(build_rank_loop(TrainJob.from_loop_config(config)))


def _quiet_report_log() -> None:
    # Ray Train logs every report's full metrics at INFO under a logger named after its
    # source file, which LoggingConfig(log_level) does not reach; the driver already
    # prints one line per report.
    from ray.train.v2._internal.execution import context
    logging.getLogger(context.__file__).setLevel(logging.WARNING)


def build_rank_loop(job: TrainJob) -> TrainLoop:
    """This rank's loop: a new model, or the one in Ray Train's checkpoint and its state."""
    cfg, t, context = job.experiment, job.experiment.training, ray.train.get_context()
    ranks = TorchRanks(context.get_world_rank(), context.get_world_size(),
                       ray.train.torch.get_device())
    set_threads(t.threads or max(1, int(job.ray.cpus_per_worker)))
    seed_everything(t.seed + ranks.rank)
    feed = ShardFeed(read_shard(ray.train.get_dataset_shard("train")), t.batch_tokens, t.seed,
                     resegmenter(cfg, job.src_vocab, job.tgt_vocab), job.ray.record_examples_dir)
    model, restored = _model_and_state(job, ray.train.get_checkpoint(), ranks)
    reports = RayReports(job, feed, ranks.rank)
    telemetry = TrainTelemetry(job.ray.run_name or cfg.name, ranks.rank)
    loop = build_loop(cfg, model, (job.src_vocab, job.tgt_vocab), job.dev_table(), ranks.device,
                      feed=feed, ranks=ranks, checkpoints=reports,
                      report_every=job.ray.report_every(t.eval_every),
                      on_step=lambda done: _record_step(telemetry, done))
    if restored is not None:
        _resume(loop, restored, feed, reports)
    loop.step_model = ray.train.torch.prepare_model(model)
    log.info("rank %d/%d: %d examples in shard, device %s, resumed from step %d", ranks.rank,
             ranks.world, len(feed.shard), ranks.device, reports.resumed_from)
    return loop


def _model_and_state(job: TrainJob, checkpoint: ray.train.Checkpoint | None,
                     ranks: "TorchRanks") -> tuple[torch.nn.Module, Restored | None]:
    if checkpoint is None:
        src, tgt, t = job.src_vocab, job.tgt_vocab, job.experiment.training
        model = build_model(job.experiment.model, len(src), len(tgt), src is tgt, t.seed)
        return model.to(ranks.device), None
    with checkpoint.as_directory() as path:
        model = load_checkpoint(path, ranks.device).model
        return model, unpack_state(load_trainer_state(path), ranks.rank, ranks.world)


def _resume(loop: TrainLoop, restored: Restored, feed: ShardFeed, reports: "RayReports") -> None:
    resume_from(loop, restored.trainer)
    feed.seen = restored.seen
    reports.resumed_from = loop.progress.step
    if restored.rng is not None:
        set_rng_state(restored.rng)
    else:
        seed_everything(loop.cfg.training.seed + loop.ranks.rank + loop.progress.step)


def _record_step(telemetry: TrainTelemetry, done: StepDone) -> None:
    telemetry.record_step(done.tokens, done.window.tokens, done.window.seconds)


class RayReports:
    """The loop's checkpoints on Ray: every evaluation is a `ray.train.report` by every rank
    (the metrics the driver prints), with rank 0's checkpoint; at the end rank 0 writes the
    average of its last reported weights to STORAGE/RUN_NAME/averaged."""

    def __init__(self, job: TrainJob, feed: ShardFeed, rank: int):
        self.job, self.feed, self.rank = job, feed, rank
        self.resumed_from = -1               # the step this attempt started from
        keep = job.experiment.training.average_last if rank == 0 else 0
        self.recent = RecentWeights(keep) if keep else None

    def save(self, loop: TrainLoop, ev: Evaluation) -> None:
        metrics = {**ev.record, "dev_score": ev.score, "best_score": loop.progress.best_score,
                   "tokens_per_s_workers": ev.stats["tokens_per_s_workers"],
                   "window_tokens": ev.stats["tokens"], "window_seconds": ev.stats["seconds"],
                   "examples": ev.examples, "resumed_from": self.resumed_from,
                   "rank": self.rank, "node": ray.get_runtime_context().get_node_id()}
        rngs = loop.ranks.gather(rng_state())
        with tempfile.TemporaryDirectory(prefix="s2s-ckpt-") as tmp:
            checkpoint = None
            if self.rank == 0:
                state = pack_state(trainer_state(loop), self.feed.seen, rngs)
                path = save_checkpoint(Path(tmp) / "checkpoint", loop.model, loop.src_vocab,
                                       loop.tgt_vocab, loop.cfg, ev.dev, state)
                checkpoint = ray.train.Checkpoint.from_directory(str(path))
                if self.recent is not None:
                    self.recent.add(loop.model, loop.progress.step)
            ray.train.report(metrics, checkpoint=checkpoint)

    def finish(self, loop: TrainLoop) -> dict[str, Any]:
        """Rank 0: the average of the last reported weights -> STORAGE/RUN_NAME/averaged."""
        if not self.recent:
            return {}
        ray_cfg = self.job.ray
        with tempfile.TemporaryDirectory(prefix="s2s-avg-") as tmp:
            summary = export_recent_average(loop, self.recent, Path(tmp) / "averaged")
            where = RunStorage(ray_cfg.storage_path, ray_cfg.run_name).put_directory(
                Path(summary["path"]), "averaged")
        log.info("average of the checkpoints of steps %s written to %s (dev %s)",
                 summary["steps"], where, summary["metrics"])
        return summary


class TorchRanks:
    """`train_loop.Ranks` over torch.distributed, which Ray Train has set up; with one
    worker there is nobody to talk to."""

    def __init__(self, rank: int, world: int, device: torch.device):
        self.rank, self.world, self.device = rank, world, device

    def gather(self, value: Any) -> list[Any]:
        if self.world == 1:
            return [value]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, value)
        return out

    def broadcast(self, value: Any) -> Any:
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def max(self, value: int) -> int:
        if self.world == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.long, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return int(tensor.item())
