"""The function every Ray Train worker runs: one DDP rank of the core training loop.

It mirrors `s2s.trainer.Trainer` (same step function, LR schedule, dev evaluation, early
stopping, best score and history) with three differences: the data is this worker's
Ray Data shard, gradients are averaged by DDP, and every report (each epoch end and every
`ray.checkpoint_every` steps) hands Ray Train a checkpoint in the core format whose
trainer state also holds every rank's RNG and the set of examples this epoch has covered.
With `training.average_last: N`, rank 0 keeps the weights of its last N reported
checkpoints in memory and, when training ends, writes their average (scored on dev) to
STORAGE/RUN_NAME/averaged; a restarted worker group averages what it reported since.
"""
from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist

from ..averaging import RecentWeights, dev_scorer, export_average
from ..checkpoint import load_checkpoint, load_trainer_state, save_checkpoint
from ..model import build_model
from ..prediction import Translator
from ..subword import resegmenter
from ..training import (LRSchedule, Progress, encode_corpus, evaluate, rng_state,
                        seed_everything, set_rng_state, set_threads, train_step)
from .data import RunStorage, read_shard
from .job import TrainJob, epoch_seen_after, pack_state, unpack_state, window_stats
from .telemetry import TrainTelemetry
from .sharding import split_to_count

log = logging.getLogger(__name__)

def train_fn_per_worker(config: dict[str, Any]) -> None:
    _quiet_report_log()
    RankLoop(TrainJob.from_loop_config(config)).run()


def _quiet_report_log() -> None:
    # Ray Train logs every report's full metrics at INFO under a logger named after its
    # source file, which LoggingConfig(log_level) does not reach; the driver already
    # prints one line per report.
    from ray.train.v2._internal.execution import context
    logging.getLogger(context.__file__).setLevel(logging.WARNING)


class RankLoop:
    def __init__(self, job: TrainJob):
        self.job, self.cfg = job, job.experiment
        context = ray.train.get_context()
        self.rank, self.world = context.get_world_rank(), context.get_world_size()
        t = self.cfg.training
        set_threads(t.threads or max(1, int(job.ray.cpus_per_worker)))
        seed_everything(t.seed + self.rank)
        self.device = ray.train.torch.get_device()
        self.shard = read_shard(ray.train.get_dataset_shard("train"))
        self._build(ray.train.get_checkpoint())
        self.ddp_model = ray.train.torch.prepare_model(self.model)
        self.window = {"loss": 0.0, "tokens": 0, "seconds": 0.0}
        self.metrics = TrainTelemetry(job.ray.run_name or self.cfg.name, self.rank)
        self.new_ids: list[int] = []    # trained on since the last report
        self.resegmenter = resegmenter(self.cfg, job.src_vocab, job.tgt_vocab)
        keep = t.average_last if self.rank == 0 else 0
        self.recent = RecentWeights(keep) if keep else None
        log.info("rank %d/%d: %d examples in shard, device %s, resumed from step %d",
                 self.rank, self.world, len(self.shard), self.device, self.resumed_from)

    # ----------------------------------------------------------------- setup / resume

    def _build(self, checkpoint: ray.train.Checkpoint | None) -> None:
        t = self.cfg.training
        self.progress, self.seen, self.resumed_from = Progress(), set(), -1
        if checkpoint is None:
            src, tgt = self.job.src_vocab, self.job.tgt_vocab
            self.model = build_model(self.cfg.model, len(src), len(tgt), src is tgt,
                                     t.seed).to(self.device)
            restored = None
        else:
            with checkpoint.as_directory() as path:
                self.model = load_checkpoint(path, self.device).model
                restored = unpack_state(load_trainer_state(path), self.rank, self.world)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=t.lr)
        self.schedule = LRSchedule(self.optimizer, t)
        if restored is not None:
            self._restore(restored)
        self.translator = Translator(self.model, self.job.src_vocab, self.job.tgt_vocab,
                                     self.cfg.testing, self.cfg.data.max_src_len,
                                     self.cfg.data.max_tgt_len, self.device)
        self.dev = encode_corpus(self.job.dev_table(), self.job.src_vocab, self.job.tgt_vocab,
                                 self.cfg.data.max_src_len, self.cfg.data.max_tgt_len)

    def _restore(self, restored) -> None:
        self.optimizer.load_state_dict(restored.optimizer)
        self.schedule.load_state_dict(restored.schedule)
        self.progress, self.seen = restored.progress, restored.seen
        self.resumed_from = self.progress.step
        if restored.rng is not None:
            set_rng_state(restored.rng)
        else:
            seed_everything(self.cfg.training.seed + self.rank + self.progress.step)

    # ----------------------------------------------------------------- the loop

    def run(self) -> None:
        self.started = time.time()
        stop = False
        while not stop and self.progress.epoch < self.cfg.training.epochs:
            stop = self._run_epoch()
        self._export_average()

    def _run_epoch(self) -> bool:
        """Train on what is left of the epoch; True when training must stop."""
        every = self.job.ray.report_every(self.cfg.training.eval_every)
        batches = self._plan_epoch()
        for index, positions in enumerate(batches):
            self._step(positions)
            if self._any_rank(self._out_of_time()):
                self._report(epoch_done=index == len(batches) - 1)
                return True
            if self.progress.step % every == 0 and index < len(batches) - 1 and \
                    self._report(epoch_done=False):
                return True
        return self._report(epoch_done=True)

    def _plan_epoch(self) -> list[list[int]]:
        t = self.cfg.training
        positions = self.shard.remaining(self.seen)
        batches = self.shard.batches(positions, t.batch_tokens, t.seed + self.rank,
                                     self.progress.epoch)
        return split_to_count(batches, self._max_over_ranks(len(batches)))

    def _step(self, positions: list[int]) -> None:
        p = self.progress
        started = time.perf_counter()
        batch = self._collate(positions).to(self.device)
        loss = train_step(self.ddp_model, batch, self.optimizer, self.schedule,
                          self.cfg.training)
        elapsed = time.perf_counter() - started
        p.step, p.batch_in_epoch = p.step + 1, p.batch_in_epoch + 1
        p.tokens, p.train_seconds = p.tokens + batch.ntokens, p.train_seconds + elapsed
        self.window["loss"] += loss
        self.window["tokens"] += batch.ntokens
        self.window["seconds"] += elapsed
        self.metrics.record_step(batch.ntokens, self.window["tokens"], self.window["seconds"])
        self.new_ids.extend(self.shard.example_ids(positions))

    def _collate(self, positions: list[int]):
        """The batch; with subword regularization, freshly sampled segmentations seeded by
        the examples' stable ids, so a restart (however resharded) draws the same."""
        if self.resegmenter is None:
            return self.shard.collate(positions)
        return self.resegmenter.collate(self.shard.src_texts, self.shard.tgt_texts, positions,
                                        self.progress.epoch, self.shard.example_ids(positions))

    def _out_of_time(self) -> bool:
        budget = self.cfg.training.max_minutes
        return budget > 0 and time.time() - self.started >= budget * 60

    # ----------------------------------------------------------------- reports

    def _report(self, epoch_done: bool) -> bool:
        """Gather stats, score dev, checkpoint and report; True = stop early."""
        p, t = self.progress, self.cfg.training
        stats = window_stats(self._gather(self.window))
        new_ids = self._gather(self.new_ids)
        self._record_examples(new_ids)
        self.seen = set() if epoch_done else epoch_seen_after(self.seen, new_ids)
        if epoch_done:
            p.epoch, p.batch_in_epoch = p.epoch + 1, 0
        dev = self._broadcast(self._evaluate() if self.rank == 0 else None)
        score = next(iter(dev.values()))
        self.schedule.observe(score)
        improved = score > p.best_score
        p.best_score, p.bad_evals = (score, 0) if improved else (p.best_score, p.bad_evals + 1)
        record = {"step": p.step, "epoch": p.epoch, "lr": self.schedule.lr(),
                  "train_loss": stats["train_loss"], "tokens_per_s": stats["tokens_per_s"],
                  "wall_s": time.time() - self.started, **{f"dev_{k}": v for k, v in dev.items()}}
        p.history.append(record)
        metrics = {**record, "dev_score": score, "best_score": p.best_score,
                   "tokens_per_s_workers": stats["tokens_per_s_workers"],
                   "window_tokens": stats["tokens"], "window_seconds": stats["seconds"],
                   "examples": sum(len(ids) for ids in new_ids), "resumed_from": self.resumed_from,
                   "rank": self.rank, "node": ray.get_runtime_context().get_node_id()}
        self._checkpoint_and_report(metrics, dev)
        self.window = {"loss": 0.0, "tokens": 0, "seconds": 0.0}
        self.new_ids = []
        return t.early_stopping > 0 and p.bad_evals >= t.early_stopping

    def _evaluate(self) -> dict[str, float]:
        t = self.cfg.training
        return evaluate(self.translator, self.dev, self.cfg.data.task, t.dev_sentences)

    def _checkpoint_and_report(self, metrics: dict[str, Any], dev: dict[str, float]) -> None:
        rngs = self._gather(rng_state())
        with tempfile.TemporaryDirectory(prefix="s2s-ckpt-") as tmp:
            checkpoint = None
            if self.rank == 0:
                state = pack_state(self.optimizer, self.schedule, self.progress, self.seen, rngs)
                path = save_checkpoint(Path(tmp) / "checkpoint", self.model, self.job.src_vocab,
                                       self.job.tgt_vocab, self.cfg, dev, state)
                checkpoint = ray.train.Checkpoint.from_directory(str(path))
                if self.recent is not None:
                    self.recent.add(self.model, self.progress.step)
            ray.train.report(metrics, checkpoint=checkpoint)

    def _export_average(self) -> None:
        """Rank 0: the average of the last reported weights -> STORAGE/RUN_NAME/averaged."""
        if not self.recent:
            return
        t, job = self.cfg.training, self.job
        score = dev_scorer(self.translator, self.dev, self.cfg.data.task, t.dev_sentences)
        with tempfile.TemporaryDirectory(prefix="s2s-avg-") as tmp:
            summary = export_average(self.recent, self.model, job.src_vocab, job.tgt_vocab,
                                     self.cfg, Path(tmp) / "averaged", score)
            where = RunStorage(job.ray.storage_path, job.ray.run_name).put_directory(
                Path(summary["path"]), "averaged")
        log.info("average of the checkpoints of steps %s written to %s (dev %s)",
                 summary["steps"], where, summary["metrics"])

    def _record_examples(self, new_ids: list[list[int]]) -> None:
        """Audit trail: the example ids each rank trained on, per epoch (rank 0 writes)."""
        out = self.job.ray.record_examples_dir
        if not out or self.rank != 0:
            return
        Path(out).mkdir(parents=True, exist_ok=True)
        with open(Path(out) / "examples.jsonl", "a", encoding="utf-8") as log_file:
            for rank, ids in enumerate(new_ids):
                log_file.write(json.dumps({"epoch": self.progress.epoch, "rank": rank,
                                           "step": self.progress.step, "ids": ids}) + "\n")

    # ----------------------------------------------------------------- collectives
    # torch.distributed (gloo on CPU, NCCL on GPU) is already set up by Ray Train;
    # with one worker there is nobody to talk to.

    def _gather(self, value: Any) -> list[Any]:
        if self.world == 1:
            return [value]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, value)
        return out

    def _broadcast(self, value: Any) -> Any:
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def _max_over_ranks(self, value: int) -> int:
        if self.world == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.long, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return int(tensor.item())

    def _any_rank(self, flag: bool) -> bool:
        if self.world == 1 or self.cfg.training.max_minutes <= 0:
            return flag
        return self._max_over_ranks(int(flag)) > 0
