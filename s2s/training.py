"""The parts of training under the loop (`train_loop.py`), shared by both paths: the encoded
corpus, the per-step function (`train_step`, mixed precision optional), the LR schedule
(warm-up, decay on plateau), dev evaluation, seeding and RNG state, and `Progress`, where
a run is (saved with every checkpoint).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import random
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from .batching import Batch, collate, token_batches, truncate
from .config import TrainingConfig
from .loss import training_loss
from .scoring import task_scores
from .precision import MixedPrecision
from .prediction import Translator
from .vocabulary import Vocabulary

log = logging.getLogger(__name__)


@dataclass
class EncodedCorpus:
    src: list[list[int]]
    tgt: list[list[int]]
    src_texts: list[str]
    tgt_texts: list[str]

    def __len__(self) -> int:
        return len(self.src)

    def batches(self, batch_tokens: int, seed: int | None, epoch: int) -> list[list[int]]:
        return token_batches([len(s) for s in self.src], [len(t) for t in self.tgt],
                             batch_tokens, seed, epoch)

    def collate(self, indices: Sequence[int]) -> Batch:
        return collate(self.src, self.tgt, indices)


def encode_corpus(table: pa.Table, src_vocab: Vocabulary, tgt_vocab: Vocabulary,
                  max_src: int, max_tgt: int) -> EncodedCorpus:
    src_texts = table.column("src").to_pylist()
    tgt_texts = table.column("tgt").to_pylist()
    src = truncate(src_vocab.encode(src_texts), max_src)
    tgt = truncate(tgt_vocab.encode(tgt_texts), max_tgt)
    return EncodedCorpus(src, tgt, src_texts, tgt_texts)


class LRSchedule:
    """Linear warm-up to the base rate, then (training.lr_schedule) either decay by `factor`
    whenever dev scores stop improving for `patience` evaluations ("plateau"), or a linear
    decay as the time budget is spent ("budget": the loop reports it through `spend`).
    Never below min_lr."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: TrainingConfig):
        self.optimizer, self.cfg = optimizer, cfg
        self.steps, self.scale, self.best, self.bad = 0, 1.0, float("-inf"), 0
        self.spent = 0.0  # fraction of training.max_minutes used, as the ranks agree on it
        self._apply()

    def lr(self) -> float:
        warm = min(1.0, (self.steps + 1) / max(1, self.cfg.warmup_steps))
        decay = 1.0 - self.spent if self.cfg.lr_schedule == "budget" else self.scale
        return max(self.cfg.min_lr, self.cfg.lr * warm * decay)

    def step(self) -> None:
        self.steps += 1
        self._apply()

    def spend(self, fraction: float) -> None:
        """The share of the time budget used so far (0..1); only "budget" decays with it."""
        self.spent = min(1.0, max(0.0, fraction))
        self._apply()

    def observe(self, score: float) -> None:
        if score > self.best:
            self.best, self.bad = score, 0
            return
        self.bad += 1
        if self.bad >= self.cfg.plateau_patience and self.cfg.lr_schedule == "plateau":
            self.scale *= self.cfg.plateau_factor
            self.bad = 0
            self._apply()

    def _apply(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr()

    def state_dict(self) -> dict[str, Any]:
        # `spent` is not kept: a resumed run starts a new budget (its Clock starts again).
        return {"steps": self.steps, "scale": self.scale, "best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps, self.scale = int(state["steps"]), float(state["scale"])
        self.best, self.bad = float(state["best"]), int(state["bad"])
        self._apply()


def train_step(model: nn.Module, batch: Batch, optimizer: torch.optim.Optimizer,
               schedule: LRSchedule, cfg: TrainingConfig,
               precision: MixedPrecision | None = None) -> float:
    """One teacher-forced update; returns the summed (label-smoothed) loss.
    `precision` (one per run) turns on mixed precision on CUDA; None or CPU: plain fp32."""
    model.train()
    precision = precision or FP32
    with precision.autocast():
        loss = training_loss(model, batch, cfg.label_smoothing, cfg.coverage_weight)
    optimizer.zero_grad(set_to_none=True)
    precision.scaler.scale(loss / batch.ntokens).backward()
    if cfg.clip_norm > 0:
        precision.scaler.unscale_(optimizer)                      # clip the true gradients
        nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
    precision.scaler.step(optimizer)                              # skipped if grads overflowed
    precision.scaler.update()
    schedule.step()
    return float(loss.detach())


FP32 = MixedPrecision("cpu")   # autocast off, scaler disabled: exactly the fp32 step


def to_device(batch: Batch, device: torch.device) -> Batch:
    """The batch on `device`; to CUDA from pinned (page-locked) host memory, which the copy
    needs in order to be asynchronous and is faster from anyway."""
    if device.type == "cuda":
        batch = dataclasses.replace(batch, src=batch.src.pin_memory(),
                                    tgt_in=batch.tgt_in.pin_memory(),
                                    tgt_out=batch.tgt_out.pin_memory())
    return batch.to(device)


def evaluate(translator: Translator, corpus: EncodedCorpus, task: str, limit: int,
             beam: int = 1) -> dict[str, float]:
    """Decode the first `limit` dev sources and score them against references."""
    n = len(corpus) if limit <= 0 else min(limit, len(corpus))
    hyps = translator.best(corpus.src_texts[:n], beam=beam)
    return task_scores(task, hyps, corpus.tgt_texts[:n])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
            "python_pos": random.getstate()[2]}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(int(x) for x in state["python"]), state["python_pos"]))


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads or os.cpu_count() or 1)


@dataclass
class Progress:
    """Where training is; saved with every checkpoint so a resume continues exactly."""
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_score: float = float("-inf")
    bad_evals: int = 0
    train_seconds: float = 0.0
    tokens: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
