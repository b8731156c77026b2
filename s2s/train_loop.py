"""The one training loop: `s2s train` (s2s/trainer.py, one process) and `s2s train --ray`
(s2s/train/rank.py, one DDP rank per Ray Train worker) both build a `TrainLoop` and call
`run_training`, which reads top to bottom:

    while epochs are left:
        for each batch left of this epoch (as many on every rank):
            collate, copy to the device, one optimizer step (training.train_step)
            share of the budget spent (the most any rank spent) -> the budget LR schedule;
              all of it?                      -> evaluate and checkpoint, stop
            every `report_every` steps        -> evaluate and checkpoint, maybe stop early
        end of the epoch                      -> evaluate and checkpoint, maybe stop early
    the run's end (history, averaged weights)

What differs between the two paths is handed in, as four seams:

    feed         where batches come from and how they are collated: the local encoded
                 corpus (resumed at a batch index) or a Ray Data shard (resumed from the set
                 of example ids the epoch has covered, padded to every rank's step count)
    ranks        how ranks agree: `SingleProcess` (nobody to ask) or torch.distributed
    checkpoints  how a checkpoint is saved or reported after each evaluation, and what the
                 run ends with: OUT/best, last, recent or `ray.train.report`
    on_step      what watches each step: a progress bar and log lines, or Ray metrics

history.json (`Progress.history`) is one record per evaluation, the same on both paths:

    step          optimizer steps so far
    epoch         epochs finished (an evaluation at an epoch's end counts it)
    lr            the schedule's rate at the evaluation, read *before* the plateau schedule
                  observes this evaluation's dev score: the rate the steps up to this record
                  trained with (during warm-up, the one the next step takes); a decay this
                  score causes shows from the next record on
    train_loss    mean target-token loss since the previous record, over all ranks
    tokens_per_s  target tokens per second of step time (collation, host-to-device copy and
                  the update) since the previous record, all ranks together
    wall_s        seconds since this process (this attempt) started training
    dev_<metric>  dev scores of rank 0's weights, the first one the selection score

No Ray or Kafka here (tests/unit/test_core_imports.py).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import pyarrow as pa
import torch
from torch import nn

from .averaging import RecentWeights, dev_scorer, export_average
from .batching import Batch
from .config import ExperimentConfig
from .precision import MixedPrecision
from .prediction import Translator
from .training import (EncodedCorpus, LRSchedule, Progress, encode_corpus, evaluate, to_device,
                       train_step)
from .vocabulary import Vocabulary

HISTORY_KEYS = ("step", "epoch", "lr", "train_loss", "tokens_per_s", "wall_s")  # + dev_<metric>


# ------------------------------------------------------------------------------ the seams

class Ranks(Protocol):
    """How the ranks of one run agree; every rank calls each method at the same point."""
    rank: int
    world: int

    def gather(self, value: Any) -> list[Any]: ...     # every rank's value, by rank
    def broadcast(self, value: Any) -> Any: ...        # rank 0's value
    def max(self, value: int) -> int: ...              # the largest value of any rank


class SingleProcess:
    """One process: it agrees with itself."""
    rank, world = 0, 1

    def gather(self, value: Any) -> list[Any]:
        return [value]

    def broadcast(self, value: Any) -> Any:
        return value

    def max(self, value: int) -> int:
        return value


class Feed(Protocol):
    """Where batches come from; a plan is whatever `batch` turns into a Batch."""

    def epoch(self, progress: Progress, ranks: Ranks) -> list[Any]:
        """The plans left of `progress.epoch`: as many on every rank."""

    def batch(self, plan: Any, epoch: int) -> Batch:
        """The collated (CPU) batch of a plan."""

    def trained(self, plan: Any) -> None:
        """The step on `plan` is done."""

    def window_done(self, progress: Progress, ranks: Ranks, epoch_done: bool) -> int:
        """Evaluation time (before `progress` counts the epoch): the data position to
        checkpoint moves on; returns the examples all ranks trained on since the last one."""


class Checkpoints(Protocol):
    def save(self, loop: "TrainLoop", evaluation: "Evaluation") -> None:
        """After every evaluation, on every rank: save or report a checkpoint."""

    def finish(self, loop: "TrainLoop") -> dict[str, Any]:
        """When training ends, on every rank: what the run ends with; its summary."""


@dataclass(frozen=True)
class StepDone:
    """What `on_step` sees after each optimizer step."""
    progress: Progress
    loss: float              # summed over the batch's target tokens
    tokens: int
    seconds: float
    window: "Window"         # this rank, since the last evaluation
    lr: float                # the rate the next step takes
    wall_s: float


@dataclass(frozen=True)
class Evaluation:
    """One evaluation, as `Checkpoints.save` gets it."""
    record: dict[str, Any]   # the history record
    dev: dict[str, float]
    score: float             # the selection score (the first dev metric)
    improved: bool           # a new best score
    stats: dict[str, Any]    # window_stats over all ranks
    examples: int            # trained on since the last evaluation, all ranks


@dataclass
class TrainLoop:
    """One rank's training run; `build_loop` fills in the common parts."""
    cfg: ExperimentConfig
    model: nn.Module                     # the weights that are evaluated and saved
    src_vocab: Vocabulary
    tgt_vocab: Vocabulary
    device: torch.device
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    precision: MixedPrecision
    translator: Translator               # decodes dev with `model`
    dev: EncodedCorpus
    feed: Feed
    ranks: Ranks
    checkpoints: Checkpoints
    report_every: int                    # steps between mid-epoch evaluations
    on_step: Callable[[StepDone], None] = lambda done: None
    step_model: nn.Module | None = None  # what the step trains (DDP-wrapped); None = model
    progress: Progress = field(default_factory=Progress)


def build_loop(cfg: ExperimentConfig, model: nn.Module, vocabs: tuple[Vocabulary, Vocabulary],
               dev_table: pa.Table, device: torch.device, **seams: Any) -> TrainLoop:
    """Optimizer, schedule, mixed precision and the dev set for `model` (on `device`);
    `seams`: feed, ranks, checkpoints, report_every and optionally on_step."""
    src, tgt = vocabs
    d = cfg.data
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.training.lr)
    translator = Translator(model, src, tgt, cfg.testing, d.max_src_len, d.max_tgt_len, device)
    dev = encode_corpus(dev_table, src, tgt, d.max_src_len, d.max_tgt_len)
    return TrainLoop(cfg, model, src, tgt, device, optimizer, LRSchedule(optimizer, cfg.training),
                     MixedPrecision(device), translator, dev, **seams)


# ------------------------------------------------------------------------------ the loop

def run_training(loop: TrainLoop) -> dict[str, Any]:
    """Train until the epochs, the time budget or early stopping ends it."""
    clock, window = Clock(loop.cfg.training.max_minutes), Window()
    stop = False
    while not stop and loop.progress.epoch < loop.cfg.training.epochs:
        stop = _run_epoch(loop, clock, window)
    return loop.checkpoints.finish(loop)


def _run_epoch(loop: TrainLoop, clock: "Clock", window: "Window") -> bool:
    """Train on what is left of the epoch; True when training must stop."""
    plans = loop.feed.epoch(loop.progress, loop.ranks)
    for index, plan in enumerate(plans):
        last = index == len(plans) - 1
        _step(loop, plan, clock, window)
        # The most-spent rank's share of the budget sets every rank's LR (so replicas take the
        # same steps) and, once whole, stops all (the collective only runs with a budget).
        if clock.limited and _spend(loop, clock) >= 1.0:
            _evaluate(loop, clock, window, epoch_done=last)
            return True
        if loop.progress.step % loop.report_every == 0 and not last \
                and _evaluate(loop, clock, window, epoch_done=False):
            return True
    return _evaluate(loop, clock, window, epoch_done=True)


def _spend(loop: TrainLoop, clock: "Clock") -> float:
    spent = loop.ranks.max(clock.spent_parts()) / Clock.PARTS
    loop.schedule.spend(spent)
    return spent


def _step(loop: TrainLoop, plan: Any, clock: "Clock", window: "Window") -> None:
    p = loop.progress
    started = time.perf_counter()
    batch = to_device(loop.feed.batch(plan, p.epoch), loop.device)
    loss = train_step(loop.step_model or loop.model, batch, loop.optimizer, loop.schedule,
                      loop.cfg.training, loop.precision)
    elapsed = time.perf_counter() - started
    p.step, p.batch_in_epoch = p.step + 1, p.batch_in_epoch + 1
    p.tokens, p.train_seconds = p.tokens + batch.ntokens, p.train_seconds + elapsed
    window.add(loss, batch.ntokens, elapsed)
    loop.feed.trained(plan)
    loop.on_step(StepDone(p, loss, batch.ntokens, elapsed, window, loop.schedule.lr(),
                          clock.elapsed()))


def _evaluate(loop: TrainLoop, clock: "Clock", window: "Window", epoch_done: bool) -> bool:
    """Score dev, record history, decay the LR on plateau, checkpoint; True = stop early."""
    p, t, ranks = loop.progress, loop.cfg.training, loop.ranks
    stats = window_stats(ranks.gather(window.counters()))
    examples = loop.feed.window_done(p, ranks, epoch_done)
    if epoch_done:
        p.epoch, p.batch_in_epoch = p.epoch + 1, 0
    dev = ranks.broadcast(_dev_scores(loop) if ranks.rank == 0 else None)
    score = next(iter(dev.values()))
    record = history_record(p, loop.schedule.lr(), stats, dev, clock.elapsed())
    p.history.append(record)
    loop.schedule.observe(score)           # after the record: its lr is the one trained with
    improved = score > p.best_score
    p.best_score, p.bad_evals = (score, 0) if improved else (p.best_score, p.bad_evals + 1)
    window.reset()
    loop.checkpoints.save(loop, Evaluation(record, dev, score, improved, stats, examples))
    return t.early_stopping > 0 and p.bad_evals >= t.early_stopping


def _dev_scores(loop: TrainLoop) -> dict[str, float]:
    return evaluate(loop.translator, loop.dev, loop.cfg.data.task, loop.cfg.training.dev_sentences)


def history_record(p: Progress, lr: float, stats: dict[str, Any], dev: dict[str, float],
                   wall_s: float) -> dict[str, Any]:
    """One history.json record (see the module docstring for what each key means)."""
    return {"step": p.step, "epoch": p.epoch, "lr": lr, "train_loss": stats["train_loss"],
            "tokens_per_s": stats["tokens_per_s"], "wall_s": wall_s,
            **{f"dev_{k}": v for k, v in dev.items()}}


# ------------------------------------------------------------------------------ bookkeeping

class Clock:
    """Wall time since training started, against training.max_minutes (0 = no budget)."""

    PARTS = 100_000  # the budget's share goes between ranks as an integer of these

    def __init__(self, max_minutes: float):
        self.started, self.budget_s = time.time(), max_minutes * 60

    @property
    def limited(self) -> bool:
        return self.budget_s > 0

    def elapsed(self) -> float:
        return time.time() - self.started

    def spent_parts(self) -> int:
        """How much of the budget is used, in PARTS (PARTS: all of it, or more)."""
        return min(self.PARTS, int(self.elapsed() / self.budget_s * self.PARTS)) if self.limited else 0


@dataclass
class Window:
    """This rank's training since the last evaluation."""
    loss: float = 0.0        # summed over target tokens
    tokens: int = 0
    seconds: float = 0.0

    def add(self, loss: float, tokens: int, seconds: float) -> None:
        self.loss, self.tokens, self.seconds = (self.loss + loss, self.tokens + tokens,
                                                self.seconds + seconds)

    def counters(self) -> dict[str, float]:
        return asdict(self)

    def reset(self) -> None:
        self.loss, self.tokens, self.seconds = 0.0, 0, 0.0


def window_stats(per_rank: Sequence[dict[str, float]]) -> dict[str, Any]:
    """Loss and throughput since the last evaluation, from every rank's own `Window`.

    Ranks step in lock-step (DDP), so the slowest one's step time is the wall time the
    whole group needed for all their tokens.
    """
    tokens = sum(r["tokens"] for r in per_rank)
    seconds = max((r["seconds"] for r in per_rank), default=0.0)
    return {"train_loss": sum(r["loss"] for r in per_rank) / max(tokens, 1),
            "tokens": tokens, "seconds": seconds,
            "tokens_per_s": tokens / max(seconds, 1e-9),
            "tokens_per_s_workers": [r["tokens"] / max(r["seconds"], 1e-9) for r in per_rank]}


def trainer_state(loop: TrainLoop) -> dict[str, Any]:
    """The trainer state both paths checkpoint (each adds its RNG and data position):
    tensors, numbers, lists and dicts only, so it loads with torch.load(weights_only=True)."""
    state = {"optimizer": loop.optimizer.state_dict(), "schedule": loop.schedule.state_dict(),
             "progress": asdict(loop.progress)}
    if loop.precision.scaler.is_enabled():
        state["grad_scaler"] = loop.precision.scaler.state_dict()
    return state


def resume_from(loop: TrainLoop, state: dict[str, Any]) -> None:
    """Put `trainer_state`'s optimizer, schedule, grad scaler and progress back."""
    loop.optimizer.load_state_dict(state["optimizer"])
    loop.schedule.load_state_dict(state["schedule"])
    loop.progress = Progress(**state["progress"])
    if "grad_scaler" in state:
        loop.precision.scaler.load_state_dict(state["grad_scaler"])


def export_recent_average(loop: TrainLoop, recent: RecentWeights, out_dir: Path) -> dict:
    """The average of the recently saved weights, scored on dev like every evaluation,
    as a checkpoint in `out_dir`; its summary (path, steps, metrics)."""
    t = loop.cfg.training
    score = dev_scorer(loop.translator, loop.dev, loop.cfg.data.task, t.dev_sentences)
    return export_average(recent, loop.model, loop.src_vocab, loop.tgt_vocab, loop.cfg,
                          out_dir, score)
