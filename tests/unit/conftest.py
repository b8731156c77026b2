"""Fixtures for the core's unit tests: tiny configs and models with fixed seeds."""
from __future__ import annotations

import pytest
import torch

from s2s.config import ModelConfig
from s2s.model import build_model


def tiny_model_config(**overrides) -> ModelConfig:
    base = ModelConfig(emb_size=8, enc_hidden=6, dec_hidden=10, enc_layers=1, dec_layers=1,
                       attention="luong_general", input_feeding=False, dropout=0.0,
                       tied_embeddings=True)
    return base.replace(**overrides)


def tiny_model(vocab: int = 13, seed: int = 0, **overrides):
    model = build_model(tiny_model_config(**overrides), vocab, vocab, True, seed)
    return model.eval()


def random_batch(batch: int = 4, src_len: int = 7, vocab: int = 13, seed: int = 0):
    """Sources of varied length, padded with 0; every row ends in eos (3)."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, src_len + 1, (batch,), generator=gen)
    lengths[0] = src_len
    src = torch.zeros(batch, src_len, dtype=torch.long)
    for row, n in enumerate(lengths.tolist()):
        src[row, : n - 1] = torch.randint(4, vocab, (n - 1,), generator=gen)
        src[row, n - 1] = 3
    return src, lengths


@pytest.fixture
def seeded():
    torch.manual_seed(0)
