"""Attention scoring: Bahdanau (additive, "mlp") and Luong (dot, general).

Both place attention after the decoder RNN step (Luong style), which is what lets
teacher-forced training attend over all target steps at once. Keys are projected
once per source batch (`project_keys`) and reused for every decoder step.

With coverage (See et al. 2017) the scores also see how much attention each source
position has received so far (`coverage`, the running sum of earlier weights), so the
model can learn not to attend again to what it has already translated or summarized.
"""
from __future__ import annotations

import torch
from torch import nn


class Attention(nn.Module):
    """Scores queries against encoder memory and returns contexts + weights.

    memory: batch x src_len x mem_size, mask: batch x src_len (True = real token)
    queries: batch x tgt_len x query_size
    coverage (optional): batch x tgt_len x src_len, attention received before each query
    returns contexts batch x tgt_len x mem_size, weights batch x tgt_len x src_len
    (`add_coverage` gives it a `coverage_proj`, which `covered_scores` uses)
    """

    def project_keys(self, memory: torch.Tensor) -> torch.Tensor:
        return memory

    def scores(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def add_coverage(self) -> None:
        """Luong scores get a learned term w_c * coverage per source position."""
        self.coverage_proj = nn.Linear(1, 1, bias=False)

    def covered_scores(self, queries, keys, coverage):
        return self.scores(queries, keys) + self.coverage_proj(coverage.unsqueeze(-1)).squeeze(-1)

    def forward(self, queries, keys, memory, mask, coverage=None):
        scores = (self.scores(queries, keys) if coverage is None else
                  self.covered_scores(queries, keys, coverage))   # batch x tgt x src
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
        return self._energy(queries, keys.unsqueeze(1))

    def add_coverage(self) -> None:
        """As in See et al.: w_c * coverage joins the sum inside the tanh."""
        self.coverage_proj = nn.Linear(1, self.key_proj.out_features, bias=False)

    def covered_scores(self, queries, keys, coverage):
        cov = self.coverage_proj(coverage.unsqueeze(-1))           # batch x tgt x src x att
        return self._energy(queries, keys.unsqueeze(1) + cov)

    def _energy(self, queries, keys):
        """keys: batch x (1 or tgt) x src x att, already summed with any extra terms."""
        q = self.query_proj(queries).unsqueeze(2)                  # batch x tgt x 1 x att
        hidden = torch.tanh(q + keys)                              # batch x tgt x src x att
        return self.energy(hidden).squeeze(-1)                     # batch x tgt x src


# The attention types by config name: `model.attention` accepts exactly these, so a new
# type is a class above and a line here.
ATTENTION_TYPES: dict[str, type[Attention]] = {
    "bahdanau": BahdanauAttention,
    "luong_dot": LuongDotAttention,
    "luong_general": LuongGeneralAttention,
}


def build_attention(kind: str, query_size: int, mem_size: int,
                    coverage: bool = False) -> Attention:
    attention = ATTENTION_TYPES[kind](query_size, mem_size)
    if coverage:
        attention.add_coverage()
    return attention
