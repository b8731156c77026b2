"""Texts in, texts out: tokenization, length-sorted batching and search around a model.

The one entry point for decoding, shared by the trainer's dev evaluation,
`s2s translate`/`evaluate`/`attention`, the Serve translator and the benchmarks.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from .batching import source_tensor
from .checkpoint import LoadedModel, load_checkpoint, read_manifest
from .config import TestingConfig
from .model import Seq2Seq
from .precision import autocast
from .search import Hypothesis, search
from .vocabulary import Vocabulary

log = logging.getLogger(__name__)


@dataclass
class Translation:
    text: str
    score: float
    tokens: list[int]
    attention: list[list[float]]
    copy: list[float] = field(default_factory=list)  # P(copy) per output token (copy attention)


@dataclass(frozen=True)
class SearchOptions:
    beam: int
    n_best: int
    alpha: float                 # length penalty
    keep_attention: bool


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Translator:
    def __init__(self, model: Seq2Seq, src_vocab: Vocabulary, tgt_vocab: Vocabulary,
                 testing: TestingConfig, max_src_len: int, max_tgt_len: int,
                 device: torch.device | str = "cpu", name: str = "", version: str = ""):
        self.model, self.src_vocab, self.tgt_vocab = model, src_vocab, tgt_vocab
        self.name, self.version = name, version   # the checkpoint's, stamped on stream answers
        self.testing = testing
        self.max_src_len, self.max_tgt_len = max_src_len, max_tgt_len
        self.device = torch.device(device)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto",
                        quantize: str | None = None) -> "Translator":
        """quantize="int8" decodes an fp32 checkpoint in int8; an int8 checkpoint is int8
        anyway. int8 runs on CPU, which is what device "auto" then picks."""
        if device == "auto" and (quantize or read_manifest(path).get("quantization")):
            device = "cpu"
        loaded = load_checkpoint(path, resolve_device(device), quantize)
        return cls.from_loaded(loaded)

    @classmethod
    def from_loaded(cls, loaded: LoadedModel) -> "Translator":
        cfg = loaded.config
        # The embeddings stay fp32 parameters in an int8 model too: they tell the device.
        return cls(loaded.model, loaded.src_vocab, loaded.tgt_vocab, cfg.testing,
                   cfg.data.max_src_len, cfg.data.max_tgt_len,
                   next(loaded.model.parameters()).device, loaded.name, loaded.version)

    def encode_sources(self, texts: Sequence[str]) -> list[list[int]]:
        """Subword ids, cut to the model's source limit (one warning per call)."""
        ids = self.src_vocab.encode(texts)
        limit = self.max_src_len - 1
        long = [i for i, seq in enumerate(ids) if len(seq) > limit]
        if long:
            log.warning("%d of %d texts are over the model's limit of %d tokens and were "
                        "truncated (first: text %d, %d tokens)", len(long), len(ids), limit,
                        long[0] + 1, len(ids[long[0]]))
            for i in long:
                ids[i] = ids[i][:limit]
        return ids

    def max_lens(self, src_ids: Sequence[Sequence[int]], max_len: int | None) -> torch.Tensor:
        cap = self.max_tgt_len if max_len is None else min(max_len, self.max_tgt_len)
        lens = [min(cap, math.ceil(self.testing.max_len_ratio * len(s)) + self.testing.max_len_offset)
                for s in src_ids]
        return torch.tensor(lens, dtype=torch.long)

    @torch.no_grad()
    def translate(self, texts: Sequence[str], beam: int | None = None, n_best: int = 1,
                  max_len: int | None = None, alpha: float | None = None,
                  keep_attention: bool = False) -> list[list[Translation]]:
        """n_best translations per text, best first; empty texts give empty output."""
        beam = beam or self.testing.beam
        alpha = self.testing.length_penalty if alpha is None else alpha
        self.model.eval()
        src_ids = self.encode_sources(texts)
        # Empty texts are answered without decoding; the rest go in length-sorted chunks.
        results = [[Translation("", 0.0, [], [])] if not ids else [] for ids in src_ids]
        order = sorted((i for i, ids in enumerate(src_ids) if ids), key=lambda i: len(src_ids[i]))
        options = SearchOptions(beam, n_best, alpha, keep_attention)
        for start in range(0, len(order), self.testing.batch_size):
            chunk = order[start:start + self.testing.batch_size]
            decoded = self._decode([src_ids[i] for i in chunk], max_len, options)
            for i, translations in zip(chunk, decoded, strict=True):
                results[i] = translations
        return results

    def _decode(self, seqs: list[list[int]], max_len: int | None,
                options: "SearchOptions") -> list[list[Translation]]:
        """The n-best translations of one length-sorted chunk of source ids."""
        src, src_len = source_tensor(seqs)
        with autocast(self.device):            # mixed precision on CUDA; a no-op on CPU
            enc = self.model.encode(src.to(self.device), src_len.to(self.device))
            hyps = search(self.model, enc, self.max_lens(seqs, max_len), options.beam,
                          options.n_best, options.alpha, options.keep_attention)
        return [[self._to_translation(h) for h in item] for item in hyps]

    def _to_translation(self, hyp: Hypothesis) -> Translation:
        text = self.tgt_vocab.decode([hyp.tokens])[0]
        return Translation(text, hyp.score, hyp.tokens, hyp.attention, hyp.copy)

    def best(self, texts: Sequence[str], **kwargs) -> list[str]:
        return [items[0].text for items in self.translate(texts, **kwargs)]
