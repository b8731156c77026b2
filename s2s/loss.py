"""Token-level cross-entropy with label smoothing and padding masked out.

L = sum_t -log p(y_t | y_<t, X), summed over the batch's non-pad target tokens;
callers divide by the token count so the gradient scale does not depend on the
batch's shape.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .coverage import coverage_loss
from .vocabulary import PAD_ID


def sequence_loss(logits: torch.Tensor, targets: torch.Tensor,
                  label_smoothing: float = 0.0) -> torch.Tensor:
    """logits: batch x tgt_len x vocab, targets: batch x tgt_len -> summed loss (scalar)."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                           ignore_index=PAD_ID, label_smoothing=label_smoothing,
                           reduction="sum")


def training_loss(model: torch.nn.Module, batch, label_smoothing: float = 0.0,
                  coverage_weight: float = 1.0) -> torch.Tensor:
    """The summed loss of one teacher-forced batch (`s2s.batching.Batch`): token
    cross-entropy, plus coverage_weight x the coverage loss when the model has coverage.
    `model` may be wrapped by DistributedDataParallel: it is called, never unwrapped
    for the forward pass, so gradients are still synchronized."""
    core = getattr(model, "module", model)
    if not core.cfg.coverage or coverage_weight == 0:
        logits = model(batch.src, batch.src_len, batch.tgt_in)    # batch x tgt x vocab
        return sequence_loss(logits, batch.tgt_out, label_smoothing)
    logits, weights = model(batch.src, batch.src_len, batch.tgt_in, return_attention=True)
    return (sequence_loss(logits, batch.tgt_out, label_smoothing)
            + coverage_weight * coverage_loss(weights, batch.tgt_out != PAD_ID))
