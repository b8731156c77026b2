"""Subword regularization: the training side sees a freshly sampled segmentation of each
sentence every time its batch is drawn (Kudo 2018 for unigram models, BPE-dropout for
BPE); dev evaluation, `s2s translate` and the Serve translator always use the one best
segmentation (`Vocabulary.encode`), so inference stays deterministic.

    data:
      tokenizer:
        sampling_alpha: 0.1    # 0 = off

Batches are planned from the deterministic segmentation's lengths; a sampled one is
usually a few pieces longer, so a batch may exceed `training.batch_tokens` a little.
Each draw is seeded by (training seed, epoch, the batch's examples), so a resumed run
samples exactly what an uninterrupted one would have.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Sequence

from .batching import Batch, collate, truncate
from .config import ExperimentConfig
from .training import EncodedCorpus
from .vocabulary import Vocabulary


@dataclass(frozen=True)
class Resegmenter:
    """Sampled segmentations of a batch's texts, collated like `batching.collate`."""
    src_vocab: Vocabulary
    tgt_vocab: Vocabulary
    alpha: float
    max_src: int
    max_tgt: int
    seed: int

    def collate(self, src_texts: Sequence[str], tgt_texts: Sequence[str],
                indices: Sequence[int], epoch: int, keys: Sequence[int] | None = None) -> Batch:
        """Texts are looked up by `indices`; the draw is seeded by `keys` (stable example
        ids; the indices themselves by default), the epoch and the seed."""
        draw = draw_seed(self.seed, epoch, indices if keys is None else keys)
        src = self.src_vocab.sample([src_texts[i] for i in indices], self.alpha, draw)
        tgt = self.tgt_vocab.sample([tgt_texts[i] for i in indices], self.alpha, draw + 1)
        src, tgt = truncate(src, self.max_src), truncate(tgt, self.max_tgt)
        return collate(dict(zip(indices, src)), dict(zip(indices, tgt)), indices)


@dataclass
class SampledCorpus(EncodedCorpus):
    resegmenter: Resegmenter | None = None
    epoch: int = 0                 # set by `batches`, which the trainer calls per epoch

    def batches(self, batch_tokens: int, seed: int | None, epoch: int) -> list[list[int]]:
        self.epoch = epoch
        return super().batches(batch_tokens, seed, epoch)

    def collate(self, indices: Sequence[int]) -> Batch:
        return self.resegmenter.collate(self.src_texts, self.tgt_texts, indices, self.epoch)


def draw_seed(seed: int, epoch: int, keys: Sequence[int]) -> int:
    """A 31-bit seed that differs per epoch and per batch and repeats on a resume."""
    text = f"{seed}:{epoch}:{','.join(map(str, keys))}".encode()
    return zlib.crc32(text) & 0x7FFFFFFE


def resegmenter(cfg: ExperimentConfig, src_vocab: Vocabulary,
                tgt_vocab: Vocabulary) -> Resegmenter | None:
    """The training side's sampler, or None when data.tokenizer.sampling_alpha is 0."""
    alpha = cfg.data.tokenizer.sampling_alpha
    if alpha <= 0:
        return None
    return Resegmenter(src_vocab, tgt_vocab, alpha, cfg.data.max_src_len, cfg.data.max_tgt_len,
                       cfg.training.seed)


def with_sampling(corpus: EncodedCorpus, cfg: ExperimentConfig, src_vocab: Vocabulary,
                  tgt_vocab: Vocabulary) -> EncodedCorpus:
    """The training corpus, sampling segmentations when data.tokenizer.sampling_alpha > 0."""
    sampler = resegmenter(cfg, src_vocab, tgt_vocab)
    if sampler is None:
        return corpus
    return SampledCorpus(corpus.src, corpus.tgt, corpus.src_texts, corpus.tgt_texts, sampler)
