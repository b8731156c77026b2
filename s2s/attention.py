"""Attention scoring: Bahdanau (additive, "mlp") and Luong (dot, general).

Both place attention after the decoder RNN step (Luong style), which is what lets
teacher-forced training attend over all target steps at once. Keys are projected
once per source batch (`project_keys`) and reused for every decoder step.
"""
from __future__ import annotations

import torch
from torch import nn


class Attention(nn.Module):
    """Scores queries against encoder memory and returns contexts + weights.

    memory: batch x src_len x mem_size, mask: batch x src_len (True = real token)
    queries: batch x tgt_len x query_size
    returns contexts batch x tgt_len x mem_size, weights batch x tgt_len x src_len
    """

    def project_keys(self, memory: torch.Tensor) -> torch.Tensor:
        return memory

    def scores(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, queries, keys, memory, mask):
        scores = self.scores(queries, keys)                        # batch x tgt x src
        scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        contexts = torch.bmm(weights, memory)                      # batch x tgt x mem
        return contexts, weights


class LuongDotAttention(Attention):
    """score(q, k) = q . k; needs query_size == mem_size."""

    def __init__(self, query_size: int, mem_size: int):
        super().__init__()
        if query_size != mem_size:
            raise ValueError(f"luong_dot attention needs dec_hidden ({query_size}) == "
                             f"2 * enc_hidden ({mem_size}); use luong_general")

    def scores(self, queries, keys):
        return torch.bmm(queries, keys.transpose(1, 2))


class LuongGeneralAttention(Attention):
    """score(q, k) = q . W k, with W k computed once per batch."""

    def __init__(self, query_size: int, mem_size: int):
        super().__init__()
        self.key_proj = nn.Linear(mem_size, query_size, bias=False)

    def project_keys(self, memory):
        return self.key_proj(memory)                               # batch x src x query

    def scores(self, queries, keys):
        return torch.bmm(queries, keys.transpose(1, 2))


class BahdanauAttention(Attention):
    """score(q, k) = v . tanh(W_k k + W_q q) (additive / "mlp")."""

    def __init__(self, query_size: int, mem_size: int, att_size: int | None = None):
        super().__init__()
        att_size = att_size or query_size
        self.key_proj = nn.Linear(mem_size, att_size, bias=False)
        self.query_proj = nn.Linear(query_size, att_size, bias=False)
        self.energy = nn.Linear(att_size, 1, bias=False)

    def project_keys(self, memory):
        return self.key_proj(memory)                               # batch x src x att

    def scores(self, queries, keys):
        q = self.query_proj(queries).unsqueeze(2)                  # batch x tgt x 1 x att
        hidden = torch.tanh(q + keys.unsqueeze(1))                 # batch x tgt x src x att
        return self.energy(hidden).squeeze(-1)                     # batch x tgt x src


def build_attention(kind: str, query_size: int, mem_size: int) -> Attention:
    classes = {"bahdanau": BahdanauAttention, "luong_dot": LuongDotAttention,
               "luong_general": LuongGeneralAttention}
    return classes[kind](query_size, mem_size)
