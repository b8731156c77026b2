"""Beam search's next candidates: the best `k` of a source's beam x vocab extensions.

The plain way, torch.topk over the (batch, beam * vocab) sums score + log-prob, is what a
decode step spends most of its non-model time on: on CPU, topk first copies every
(value, index) pair of a row, then partially sorts them, and the sums must be written out
first. At beam 5, batch 64 and 4000 tokens that is 1.28M pairs per step, more time than
the int8 output layer that produced the log-probs. Two small top-ks give the same result:

1. Each hypothesis's log-probs are cut into chunks of `chunk_size(vocab)` tokens. A chunk's
   best sum is its hypothesis's score plus the chunk's max log-prob (rounding is
   monotonic, so adding one number to a chunk keeps its max where it was), and a top-k over
   those gives the source's `k` best chunks.
2. A source's `k` best candidates all lie in its `k` best chunks: a candidate in any other
   chunk has `k` chunks above it, each holding a better candidate. A top-k over the sums of
   those chunks' tokens is the answer.

The sums are the very float additions (score + log-prob) a full top-k ranks, so scores,
origins and tokens are the same; only which of exactly equal candidates wins may differ,
as it may between two topk implementations.
"""
from __future__ import annotations

import functools
import math

import torch


@functools.lru_cache(maxsize=None)
def chunk_size(vocab: int) -> int:
    """The divisor of `vocab` nearest sqrt(8 * vocab): 160 of 4000 tokens. A source ranks
    beam * vocab / chunk chunk maxima, then 2 * beam * chunk sums (k = 2 * beam); counting
    elements, sqrt(vocab / 2) would balance the two, but the maxima are a reduction over
    each chunk, and torch's CPU max over short rows is slow (measured at 4000 tokens: chunks
    of 40-50 took 4-10x as long as chunks of 100-200, which cost about a plain row max)."""
    target = math.sqrt(8 * vocab)
    small = [d for d in range(1, math.isqrt(vocab) + 1) if vocab % d == 0]
    divisors = small + [vocab // d for d in small]
    return min(divisors, key=lambda d: (abs(d - target), d))


def top_candidates(scores: torch.Tensor, log_probs: torch.Tensor,
                   k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """scores: batch x beam (-inf for no hypothesis), log_probs: batch*beam x vocab, source-major.
    Returns (sums, origin beam index, token), each batch x min(k, beam * vocab), best first:
    what topk over (scores + log_probs) viewed as batch x (beam * vocab) gives."""
    batch, beam = scores.shape
    vocab = log_probs.size(1)
    chunk = chunk_size(vocab)
    per_row = vocab // chunk
    chunks = log_probs.reshape(batch * beam * per_row, chunk)
    chunk_best = scores.reshape(-1, 1) + chunks.amax(dim=1).view(batch * beam, per_row)
    n_chunks = min(k, beam * per_row)
    best = chunk_best.view(batch, beam * per_row).topk(n_chunks, dim=1).indices  # batch x n
    row = best // per_row + beam * torch.arange(batch, device=best.device).unsqueeze(1)
    flat = (row * per_row + best % per_row).view(-1)
    sums = scores.reshape(-1)[row.view(-1)].unsqueeze(1) + chunks.index_select(0, flat)
    top, pos = sums.view(batch, n_chunks * chunk).topk(min(k, n_chunks * chunk), dim=1)
    picked = best.gather(1, pos // chunk)                  # source-local chunk of each pick
    return top, picked // per_row, (picked % per_row) * chunk + pos % chunk
