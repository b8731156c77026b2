"""A worker's shard of the training data and its batches for one epoch. No Ray here.

Ray Data hands each worker a disjoint part of the tokenized training split; the worker
keeps it in memory and, every epoch, groups it into token-budget batches with the core's
`token_batches`. Two things make the distributed epoch exact:

* Data position is the set of example ids already trained on in the current epoch
  (gathered from all workers at each checkpoint). After a restart Ray Data may split the
  rows differently, so a batch counter would not say which examples are left; the id set
  does, whatever shard each worker gets this time.
* DDP needs every worker to take the same number of steps. Workers agree on the largest
  batch count and the others split their biggest batches until they have as many; no
  example is dropped or repeated to even things out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from ..batching import Batch, collate, token_batches


@dataclass
class Shard:
    """Examples of one worker: stable ids (uint64) and token ids without bos/eos (and the
    texts, when subword regularization re-segments them at every draw)."""
    ids: np.ndarray
    src: list[list[int]]
    tgt: list[list[int]]
    src_texts: list[str] | None = None
    tgt_texts: list[str] | None = None

    def __len__(self) -> int:
        return len(self.src)

    def remaining(self, seen: set[int]) -> np.ndarray:
        """Positions (into this shard) of examples not yet trained on this epoch."""
        if not seen:
            return np.arange(len(self))
        keep = [pos for pos, ident in enumerate(self.ids.tolist()) if ident not in seen]
        return np.asarray(keep, dtype=np.int64)

    def batches(self, positions: np.ndarray, batch_tokens: int, seed: int,
                epoch: int) -> list[list[int]]:
        """Token-budget batches over `positions`, in an order fixed by (seed, epoch)."""
        if len(positions) == 0:
            return []
        src_lens = [len(self.src[p]) for p in positions]
        tgt_lens = [len(self.tgt[p]) for p in positions]
        local = token_batches(src_lens, tgt_lens, batch_tokens, seed, epoch)
        return [[int(positions[i]) for i in batch] for batch in local]

    def collate(self, positions: Sequence[int]) -> Batch:
        return collate(self.src, self.tgt, positions)

    def example_ids(self, positions: Iterable[int]) -> list[int]:
        return [int(self.ids[p]) for p in positions]


def split_to_count(batches: list[list[int]], count: int) -> list[list[int]]:
    """Split the largest batches in two until there are `count` of them.

    Splitting keeps every example exactly once and only makes batches smaller, so the
    token budget still holds. Order is kept: the halves take the place of the original.
    """
    if count < len(batches):
        raise ValueError(f"cannot reduce {len(batches)} batches to {count} by splitting")
    available = sum(len(b) for b in batches)
    if count > available:
        raise ValueError(f"this worker has {available} examples left but must take {count} "
                         f"steps like the others; use fewer workers or more data")
    out = [list(b) for b in batches]
    while len(out) < count:
        largest = max(range(len(out)), key=lambda i: len(out[i]))
        half = len(out[largest]) // 2
        out[largest:largest + 1] = [out[largest][:half], out[largest][half:]]
    return out


def ids_to_array(ids: Iterable[int]) -> np.ndarray:
    """Example ids as int64 (a bit-for-bit view of the uint64 row hashes) for checkpoints."""
    return np.asarray(list(ids), dtype=np.uint64).view(np.int64)


def array_to_ids(values: np.ndarray) -> set[int]:
    return set(np.asarray(values, dtype=np.int64).view(np.uint64).tolist())
