"""Copy attention: the pointer-generator of See et al. 2017 ("Get To The Point").

At each target step a gate p_gen = sigmoid(w . [att_t; emb_t] + b), computed from the
attentional vector and the input embedding, mixes generating from the vocabulary with
copying a source token by its attention weight:

    P(w) = p_gen * softmax(W_out att_t)(w) + (1 - p_gen) * sum_{i: src_i = w} a_t,i

The vocabulary is shared by source and target (the config requires it), so a copy goes
straight to the source token's id and there is no per-batch extended vocabulary: every
copyable piece already has an id and an embedding the decoder can read back.

Out-of-vocabulary source pieces: sentencepiece never emits a piece outside its model.
With `data.tokenizer.byte_fallback: true` (what configs/manpages-summarize.yaml uses) an
unseen character is spelled as UTF-8 byte pieces (<0xE2>, ...), which are ordinary ids,
so copying them reproduces the text exactly. Without byte fallback it becomes unk (id 1):
attention on it copies unk, which decodes as " ⁇ ", the same as generating unk would —
the output marks where it copied something it cannot spell instead of guessing a word.
"""
from __future__ import annotations

import torch
from torch import nn

# Probabilities are floored before the log so a token neither generated nor copied
# still has a finite loss; far below any probability a model gives a real token.
MIN_PROB = 1e-12


class PointerGenerator(nn.Module):
    def __init__(self, att_size: int, emb_size: int):
        super().__init__()
        self.gate = nn.Linear(att_size + emb_size, 1)

    def forward(self, logits: torch.Tensor, att: torch.Tensor, emb: torch.Tensor,
                weights: torch.Tensor, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """logits rows x tgt x vocab, att rows x tgt x att, emb rows x tgt x emb,
        weights rows x tgt x src_len (zero at padding), src rows x src_len ids.
        Returns (log P: rows x tgt x vocab, copy probability 1 - p_gen: rows x tgt)."""
        # float32 whatever the autocast dtype: the floor and the sums need the range.
        p_gen = torch.sigmoid(self.gate(torch.cat([att, emb], dim=-1)).float())  # rows x tgt x 1
        probs = torch.softmax(logits.float(), dim=-1) * p_gen
        index = src.unsqueeze(1).expand(-1, weights.size(1), -1)  # rows x tgt x src_len
        # In place: `probs` is a fresh product, and scatter_add's backward needs no input.
        probs.scatter_add_(-1, index, weights.float() * (1.0 - p_gen))
        return torch.log(probs.clamp_min(MIN_PROB)), (1.0 - p_gen).squeeze(-1)
