"""Token-level cross-entropy with label smoothing and padding masked out.

L = sum_t -log p(y_t | y_<t, X), summed over the batch's non-pad target tokens;
callers divide by the token count so the gradient scale does not depend on the
batch's shape.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .vocabulary import PAD_ID


def sequence_loss(logits: torch.Tensor, targets: torch.Tensor,
                  label_smoothing: float = 0.0) -> torch.Tensor:
    """logits: batch x tgt_len x vocab, targets: batch x tgt_len -> summed loss (scalar)."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                           ignore_index=PAD_ID, label_smoothing=label_smoothing,
                           reduction="sum")
