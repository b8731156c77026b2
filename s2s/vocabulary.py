"""Subword vocabularies: SentencePiece models learned on the training split.

Ids are fixed so every part of s2s agrees without looking them up:
pad=0, unk=1, bos=2, eos=3. The model files live inside the checkpoint directory.
"""
from __future__ import annotations

import io
import random
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2

if TYPE_CHECKING:  # config.py reads the model types below
    from .config import TokenizerConfig

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
# The model types SentencePiece trains (`data.tokenizer.type`), and those that segment into
# subwords: only they sample segmentations and spell unknown pieces as bytes.
MODEL_TYPES = tuple(name.lower() for name in sentencepiece_model_pb2.TrainerSpec.ModelType.keys())
SUBWORD_TYPES = ("bpe", "unigram")


class Vocabulary:
    """One SentencePiece model: text <-> ids."""

    def __init__(self, model_proto: bytes):
        self.model_proto = model_proto
        self._sp = spm.SentencePieceProcessor(model_proto=model_proto)

    def __len__(self) -> int:
        return self._sp.get_piece_size()

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids without bos/eos; the batching code adds those. Deterministic: the one
        best segmentation, which is what inference always uses."""
        return self._sp.encode(list(texts), out_type=int)

    def sample(self, texts: Sequence[str], alpha: float, seed: int) -> list[list[int]]:
        """A sampled segmentation per text (subword regularization, training only): unigram
        models sample from the lattice with smoothing `alpha`, BPE models drop merges with
        probability `alpha` (BPE-dropout). The same seed gives the same segmentations."""
        # sentencepiece reseeds its sampler from the global seed on each call; one thread
        # keeps the order of draws, and so the result, fixed.
        spm.set_random_generator_seed(seed)
        return self._sp.encode(list(texts), out_type=int, enable_sampling=True, alpha=alpha,
                               nbest_size=-1, num_threads=1)

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        return [self._sp.decode(_strip_specials(seq)) for seq in ids]

    def pieces(self, ids: Sequence[int]) -> list[str]:
        return [self._sp.id_to_piece(i) for i in ids]

    def save(self, path: Path) -> None:
        Path(path).write_bytes(self.model_proto)

    @classmethod
    def load(cls, path: Path) -> "Vocabulary":
        return cls(Path(path).read_bytes())


def _strip_specials(ids: Sequence[int]) -> list[int]:
    out = []
    for i in ids:
        if i == EOS_ID:
            break
        if i not in (PAD_ID, BOS_ID):
            out.append(int(i))
    return out


def learn_vocabulary(texts: Iterable[str], cfg: TokenizerConfig, seed: int = 0) -> Vocabulary:
    """Learn a SentencePiece model from `texts` (sampled down to cfg.train_sentences)."""
    sample = [t for t in texts if t]
    if len(sample) > cfg.train_sentences:
        sample = random.Random(seed).sample(sample, cfg.train_sentences)
    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sample),
        model_writer=proto,
        model_type=cfg.type,
        vocab_size=cfg.vocab_size,
        # Small corpora cannot always fill the requested size; shrink instead of failing.
        hard_vocab_limit=False,
        character_coverage=cfg.character_coverage,
        pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
        num_threads=2,
        minloglevel=2,
        byte_fallback=cfg.byte_fallback,
        # Long verses and man-page paragraphs must not be dropped while learning.
        max_sentence_length=20000,
    )
    return Vocabulary(proto.getvalue())


def learn_vocabularies(src: Sequence[str], tgt: Sequence[str], cfg: TokenizerConfig,
                       seed: int = 0) -> tuple[Vocabulary, Vocabulary]:
    """(source, target) vocabularies; the same object twice when shared."""
    if cfg.shared:
        shared = learn_vocabulary(list(src) + list(tgt), cfg, seed)
        return shared, shared
    return learn_vocabulary(src, cfg, seed), learn_vocabulary(tgt, cfg, seed)
