"""The seq2seq model: embeddings -> bi-RNN encoder -> bridge -> attentional decoder -> vocab.

Read top to bottom: `encode` once per source batch, then either `forward`
(teacher forcing, all target steps) or `decode_step` (one step, for search).
With `copy_attention` the output layer is a pointer-generator (pointer.py) and the
model's scores are log-probabilities of the mixture; `coverage` (coverage.py) rides in
the decoder state.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import ModelConfig
from .decoders import RecurrentDecoder, State
from .encoders import RecurrentEncoder
from .pointer import PointerGenerator
from .vocabulary import PAD_ID


@dataclass
class Memory:
    """Encoder results reused by every decoder step."""
    memory: torch.Tensor   # batch x src_len x 2*enc_hidden
    keys: torch.Tensor     # batch x src_len x key_size (pre-projected for attention)
    mask: torch.Tensor     # batch x src_len, True where a real token is
    final: torch.Tensor    # batch x 2*enc_hidden
    src: torch.Tensor | None = None  # batch x src_len source ids (what copy attention copies)

    def select(self, index: torch.Tensor) -> "Memory":
        return Memory(*(None if t is None else t.index_select(0, index) for t in
                        (self.memory, self.keys, self.mask, self.final, self.src)))


class Seq2Seq(nn.Module):
    def __init__(self, cfg: ModelConfig, src_vocab: int, tgt_vocab: int, shared_vocab: bool):
        super().__init__()
        self.cfg = cfg
        self.src_embed = nn.Embedding(src_vocab, cfg.emb_size, padding_idx=PAD_ID)
        # One vocabulary on both sides: one embedding matrix too.
        self.tgt_embed = (self.src_embed if shared_vocab else
                          nn.Embedding(tgt_vocab, cfg.emb_size, padding_idx=PAD_ID))
        self.emb_dropout = nn.Dropout(cfg.dropout)
        self.encoder = RecurrentEncoder(cfg.rnn, cfg.emb_size, cfg.enc_hidden, cfg.enc_layers,
                                        cfg.dropout)
        # Tying needs the attentional vector to live in embedding space.
        att_out = cfg.emb_size if cfg.tied_embeddings else cfg.dec_hidden
        self.decoder = RecurrentDecoder(cfg.rnn, cfg.emb_size, cfg.dec_hidden, cfg.dec_layers,
                                        self.encoder.output_size, cfg.attention,
                                        cfg.input_feeding, cfg.dropout, att_out, cfg.coverage)
        self.output = nn.Linear(att_out, tgt_vocab, bias=False)
        self.pointer = PointerGenerator(att_out, cfg.emb_size) if cfg.copy_attention else None
        if cfg.tied_embeddings:
            self.output.weight = self.tgt_embed.weight

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> Memory:
        """src: batch x src_len ids, src_len: batch."""
        emb = self.emb_dropout(self.src_embed(src))                # batch x src_len x emb
        memory, final = self.encoder(emb, src_len)
        keys = self.decoder.attention.project_keys(memory)
        return Memory(memory, keys, src != PAD_ID, final, src)

    def forward(self, src, src_len, tgt_in, return_attention: bool = False):
        """Teacher forcing. tgt_in: batch x tgt_len (bos + target). Returns scores
        batch x tgt_len x tgt_vocab whose log_softmax is log P (logits; log-probabilities
        with copy attention), and with `return_attention` also the attention weights
        batch x tgt_len x src_len (what the coverage loss needs)."""
        enc = self.encode(src, src_len)
        state, feed = self.start(enc)
        emb = self.emb_dropout(self.tgt_embed(tgt_in))
        att, _, weights, _ = self.decoder(emb, state, enc.keys, enc.memory, enc.mask, feed)
        scores, _ = self.generate(att, emb, weights, enc.src)
        return (scores, weights) if return_attention else scores

    def generate(self, att, emb, weights, src):
        """att rows x tgt x att_out -> (scores rows x tgt x vocab, copy probability
        rows x tgt, or None without copy attention)."""
        logits = self.output(att)
        if self.pointer is None:
            return logits, None
        return self.pointer(logits, att, emb, weights, src)

    def start(self, enc: Memory) -> tuple[State, torch.Tensor | None]:
        """Initial decoder state (with zero coverage, if any) and input-feeding vector."""
        return (self.decoder.start_state(enc.final, enc.memory.size(1)),
                self.decoder.init_feed(enc.final.size(0), enc.memory))

    def decode_step(self, prev: torch.Tensor, state: State, feed, enc: Memory,
                    copy_trace: list | None = None):
        """prev: rows previous token ids, rows = batch or batch * k (k hypotheses per source,
        source-major, sharing the source's memory). Returns (log_probs rows x vocab, state,
        feed, attention weights rows x src_len). With copy attention and a `copy_trace`
        list, appends this step's copy probability (rows) to it."""
        emb = self.tgt_embed(prev).unsqueeze(1)                   # rows x 1 x emb
        att, state, weights, feed = self.decoder(emb, state, enc.keys, enc.memory, enc.mask, feed)
        scores, copy_prob = self.generate(att, emb, weights, self._row_sources(enc, prev.size(0)))
        if copy_trace is not None and copy_prob is not None:
            copy_trace.append(copy_prob.squeeze(1))
        return torch.log_softmax(scores.squeeze(1), dim=-1), state, feed, weights.squeeze(1)

    def _row_sources(self, enc: Memory, rows: int) -> torch.Tensor | None:
        """Source ids per decoder row (k rows per source in beam search), for copying."""
        if self.pointer is None or enc.src.size(0) == rows:
            return enc.src
        return enc.src.repeat_interleave(rows // enc.src.size(0), dim=0)


def build_model(cfg: ModelConfig, src_vocab: int, tgt_vocab: int, shared_vocab: bool,
                seed: int | None = None) -> Seq2Seq:
    if seed is not None:
        torch.manual_seed(seed)
    model = Seq2Seq(cfg, src_vocab, tgt_vocab, shared_vocab)
    _init_weights(model)
    return model


def _init_weights(model: Seq2Seq) -> None:
    """Uniform init for RNN/linear weights (as in Luong et al.), zero bias, small embeddings."""
    for name, param in model.named_parameters():
        if "embed" in name:
            nn.init.normal_(param, std=model.cfg.emb_size ** -0.5)
            with torch.no_grad():
                param[PAD_ID].zero_()
        elif "bias" in name:
            nn.init.zeros_(param)
        else:
            nn.init.uniform_(param, -0.1, 0.1)
