"""Token ids -> padded tensors, in length-bucketed batches of a token budget.

Sources end with eos; targets are split into a decoder input (bos + y) and the
output it must predict (y + eos). Batches hold similar lengths so little
compute is spent on padding, and their order is shuffled per epoch by seed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .vocabulary import BOS_ID, EOS_ID, PAD_ID


@dataclass
class Batch:
    src: torch.Tensor        # batch x src_len (ids + eos, padded)
    src_len: torch.Tensor    # batch
    tgt_in: torch.Tensor     # batch x tgt_len (bos + ids, padded)
    tgt_out: torch.Tensor    # batch x tgt_len (ids + eos, padded)
    indices: list[int]       # example positions in the corpus
    ntokens: int             # non-pad target tokens

    def to(self, device: torch.device | str) -> "Batch":
        move = lambda t: t.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.src), self.src_len, move(self.tgt_in), move(self.tgt_out),
                     self.indices, self.ntokens)


def truncate(seqs: Sequence[Sequence[int]], max_len: int) -> list[list[int]]:
    """Cut to max_len - 1 tokens, leaving room for eos/bos."""
    return [list(s[: max_len - 1]) for s in seqs]


def pad(seqs: Sequence[Sequence[int]], prefix: list[int], suffix: list[int]) -> torch.Tensor:
    width = max(len(s) for s in seqs) + len(prefix) + len(suffix)
    out = torch.full((len(seqs), width), PAD_ID, dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids = prefix + list(seq) + suffix
        out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out


def source_tensor(src: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded sources with eos, and their lengths."""
    lengths = torch.tensor([len(s) + 1 for s in src], dtype=torch.long)
    return pad(src, [], [EOS_ID]), lengths


def collate(src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]],
            indices: Sequence[int]) -> Batch:
    src_t, src_len = source_tensor([src[i] for i in indices])
    tgt_seqs = [tgt[i] for i in indices]
    tgt_in = pad(tgt_seqs, [BOS_ID], [])
    tgt_out = pad(tgt_seqs, [], [EOS_ID])
    ntokens = sum(len(s) + 1 for s in tgt_seqs)
    return Batch(src_t, src_len, tgt_in, tgt_out, list(indices), ntokens)


def token_batches(src_lens: Sequence[int], tgt_lens: Sequence[int], batch_tokens: int,
                  seed: int | None = None, epoch: int = 0) -> list[list[int]]:
    """Group example indices so that batch_size x longest side <= batch_tokens.

    With a seed, ties in length are broken randomly and the batch order is
    shuffled (different per epoch, the same for the same seed and epoch).
    """
    src_lens, tgt_lens = np.asarray(src_lens) + 1, np.asarray(tgt_lens) + 1
    order = np.arange(len(src_lens))
    rng = np.random.default_rng(None if seed is None else seed + epoch)
    if seed is not None:
        order = rng.permutation(order)
    order = order[np.lexsort((src_lens[order], tgt_lens[order]))]
    batches = _fill(order, np.maximum(src_lens, tgt_lens), batch_tokens)
    if seed is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def _fill(order: np.ndarray, lengths: np.ndarray, batch_tokens: int) -> list[list[int]]:
    batches, current, longest = [], [], 0
    for idx in order.tolist():
        new_longest = max(longest, int(lengths[idx]))
        if current and new_longest * (len(current) + 1) > batch_tokens:
            batches.append(current)
            current, new_longest = [], int(lengths[idx])
        current.append(idx)
        longest = new_longest
    if current:
        batches.append(current)
    return batches
