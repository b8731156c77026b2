"""Checkpoint averaging: one model whose weights are the mean of several checkpoints'.

    s2s average --models runs/x/recent/step-* --out runs/x/averaged

The last checkpoints of a run sit around the same minimum; their mean usually scores a
little better than any one of them and costs no training (OpenNMT-py and fairseq ship
the same tool). Training does it by itself with `training.average_last: N`: the local
trainer and the Ray Train worker keep the weights of their last N saved checkpoints in a
`RecentWeights` (the trainer as checkpoints OUT/recent/step-<N>) and write the average
at the end (`export_average`): OUT/averaged, or STORAGE/RUN_NAME/averaged on Ray.
"""
from __future__ import annotations

import copy
import shutil
from collections import deque
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from .checkpoint import MANIFEST, CheckpointError, load_checkpoint, save_checkpoint
from .config import ExperimentConfig
from .training import evaluate
from .vocabulary import Vocabulary

Weights = dict[str, torch.Tensor]


def weights_of(model: nn.Module) -> Weights:
    """CPU copies of the parameters, one entry per tensor: tied weights appear once."""
    return {name: p.detach().to("cpu", copy=True) for name, p in model.named_parameters()}


@torch.no_grad()
def load_weights(model: nn.Module, weights: Weights) -> None:
    params = dict(model.named_parameters())
    if set(params) != set(weights):
        raise CheckpointError(f"weights do not match the model (differ in "
                              f"{sorted(set(params) ^ set(weights))[:3]})")
    for name, param in params.items():
        param.copy_(weights[name])


def average_weights(many: Sequence[Weights]) -> Weights:
    """Element-wise mean, accumulated in float64 so the order of checkpoints does not matter."""
    if not many:
        raise ValueError("nothing to average")
    return {name: (sum(w[name].double() for w in many) / len(many)).to(first.dtype)
            for name, first in many[0].items()}


def average_checkpoints(paths: Sequence[str | Path], out_dir: str | Path) -> Path:
    """Average checkpoints of one model (same config and vocabulary) into `out_dir`;
    the config, vocabulary and name come from the last one. No trainer state: the
    average is for decoding (or for starting a new run)."""
    loaded = [load_checkpoint(path) for path in paths]
    last = loaded[-1]
    for path, item in zip(paths, loaded):
        _check_compatible(path, item, last)
    averaged = copy.deepcopy(last.model)
    load_weights(averaged, average_weights([weights_of(item.model) for item in loaded]))
    return save_checkpoint(out_dir, averaged, last.src_vocab, last.tgt_vocab, last.config)


def _check_compatible(path, item, reference) -> None:
    if item.manifest.get("quantization"):
        raise CheckpointError(f"{path} is quantized; average the fp32 checkpoints instead")
    if item.config.model != reference.config.model:
        raise CheckpointError(f"{path} has a different model config than the last checkpoint")
    if (item.src_vocab.model_proto != reference.src_vocab.model_proto
            or item.tgt_vocab.model_proto != reference.tgt_vocab.model_proto):
        raise CheckpointError(f"{path} has a different vocabulary than the last checkpoint")


class RecentWeights:
    """The weights of a run's last `keep` saved checkpoints.

    With a directory each one is a checkpoint there (DIR/step-<N>, the oldest deleted), so
    a resumed run still averages what it saved before the restart and `s2s average` can
    read them; `save(path, model)` writes one. Without a directory (the Ray Train worker,
    whose local disk may not outlive a restart) they are CPU copies in memory.
    """

    def __init__(self, keep: int, directory: str | Path | None = None,
                 save: Callable[[Path, nn.Module], object] | None = None):
        self.keep, self.save = keep, save
        self.directory = None if directory is None else Path(directory)
        self.items: deque[tuple[int, Weights | Path]] = deque()
        if self.directory is not None and self.directory.is_dir():
            found = sorted((p for p in self.directory.glob("step-*") if (p / MANIFEST).is_file()),
                           key=_step_of)
            self.items.extend((_step_of(p), p) for p in found[-keep:])

    def __len__(self) -> int:
        return len(self.items)

    def steps(self) -> list[int]:
        return [step for step, _ in self.items]

    def add(self, model: nn.Module, step: int) -> None:
        """Remember the model as saved at `step` (again at the same step: replaced)."""
        if self.items and self.items[-1][0] == step:
            self.items.pop()
        self.items.append((step, self._store(model, step)))
        while len(self.items) > self.keep:
            _, old = self.items.popleft()
            if isinstance(old, Path):
                shutil.rmtree(old, ignore_errors=True)

    def _store(self, model: nn.Module, step: int) -> Weights | Path:
        if self.directory is None:
            return weights_of(model)
        path = self.directory / f"step-{step:09d}"
        self.save(path, model)
        return path

    def average(self) -> Weights:
        return average_weights([weights_of(load_checkpoint(w).model) if isinstance(w, Path)
                                else w for _, w in self.items])


def export_average(recent: RecentWeights, model: nn.Module, src_vocab: Vocabulary,
                   tgt_vocab: Vocabulary, config: ExperimentConfig, out_dir: str | Path,
                   score: Callable[[nn.Module], dict[str, float]] | None = None) -> dict:
    """Write the average of `recent` as a checkpoint (the live model is not touched);
    `score` (e.g. a dev evaluation) fills its manifest's metrics. Returns a summary."""
    averaged = copy.deepcopy(model)
    load_weights(averaged, recent.average())
    averaged.eval()
    metrics = score(averaged) if score is not None else {}
    path = save_checkpoint(out_dir, averaged, src_vocab, tgt_vocab, config, metrics)
    return {"path": str(path), "steps": recent.steps(), "metrics": metrics}


def _step_of(path: Path) -> int:
    return int(path.stem.split("-", 1)[1])


def dev_scorer(translator, dev, task: str, limit: int) -> Callable[[nn.Module], dict[str, float]]:
    """Scores another model exactly as `translator` (same vocabulary, search settings and
    device) scores the run's dev evaluations: for the averaged model's manifest."""
    def score(model: nn.Module) -> dict[str, float]:
        other = copy.copy(translator)
        other.model = model
        return evaluate(other, dev, task, limit)
    return score
