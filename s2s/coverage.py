"""Coverage (See et al. 2017, "Get To The Point"): attention that remembers where it has been.

The coverage vector c_t = sum_{t' < t} a_t' is the attention each source position has
received before step t. It enters the attention scores (see `attention.py`) and a loss
sum_t sum_i min(a_t,i, c_t,i) penalizes attending again to what is already covered.
Only attention is sequential over target steps; the decoder RNN and the output layer
still run over all steps at once in teacher-forced training (without input feeding).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

# An LSTM state is (h, c); a GRU state is h. Both: layers x batch x hidden.
RNNState = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


@dataclass
class CoveredState:
    """A decoder state that also carries the coverage vector of each row."""
    rnn: RNNState
    coverage: torch.Tensor       # rows x src_len


def coverage_before_each_step(weights: torch.Tensor) -> torch.Tensor:
    """weights: batch x tgt x src -> c_t, the attention received before each step."""
    return weights.cumsum(dim=1) - weights


def coverage_loss(weights: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """Summed over the batch's real target steps (target_mask: batch x tgt, True = real),
    like the token loss, so callers scale both by the same token count.

    Zero when no source position is attended twice: then at every position either the
    earlier attention or the current one is zero."""
    covered = coverage_before_each_step(weights)
    overlap = torch.minimum(weights, covered).sum(dim=-1)          # batch x tgt
    return (overlap * target_mask).sum()
