"""The seq2seq model: embeddings -> bi-RNN encoder -> bridge -> attentional decoder -> vocab.

Read top to bottom: `encode` once per source batch, then either `forward`
(teacher forcing, all target steps) or `decode_step` (one step, for search).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import ModelConfig
from .decoders import RecurrentDecoder, State
from .encoders import RecurrentEncoder
from .vocabulary import PAD_ID


@dataclass
class Memory:
    """Encoder results reused by every decoder step."""
    memory: torch.Tensor   # batch x src_len x 2*enc_hidden
    keys: torch.Tensor     # batch x src_len x key_size (pre-projected for attention)
    mask: torch.Tensor     # batch x src_len, True where a real token is
    final: torch.Tensor    # batch x 2*enc_hidden

    def select(self, index: torch.Tensor) -> "Memory":
        return Memory(*(t.index_select(0, index) for t in
                        (self.memory, self.keys, self.mask, self.final)))


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
                                        cfg.input_feeding, cfg.dropout, att_out)
        self.output = nn.Linear(att_out, tgt_vocab, bias=False)
        if cfg.tied_embeddings:
            self.output.weight = self.tgt_embed.weight

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> Memory:
        """src: batch x src_len ids, src_len: batch."""
        emb = self.emb_dropout(self.src_embed(src))                # batch x src_len x emb
        memory, final = self.encoder(emb, src_len)
        keys = self.decoder.attention.project_keys(memory)
        return Memory(memory, keys, src != PAD_ID, final)

    def forward(self, src, src_len, tgt_in) -> torch.Tensor:
        """Teacher forcing. tgt_in: batch x tgt_len (bos + target). Returns logits
        batch x tgt_len x tgt_vocab."""
        enc = self.encode(src, src_len)
        state = self.decoder.init_state(enc.final)
        feed = self.decoder.init_feed(src.size(0), enc.memory)
        emb = self.emb_dropout(self.tgt_embed(tgt_in))
        att, _, _, _ = self.decoder(emb, state, enc.keys, enc.memory, enc.mask, feed)
        return self.output(att)

    def start(self, enc: Memory) -> tuple[State, torch.Tensor | None]:
        """Initial decoder state and input-feeding vector for search."""
        return self.decoder.init_state(enc.final), self.decoder.init_feed(
            enc.final.size(0), enc.memory)

    def decode_step(self, prev: torch.Tensor, state: State, feed, enc: Memory):
        """prev: rows previous token ids, rows = batch or batch * k (k hypotheses per source,
        source-major, sharing the source's memory). Returns (log_probs rows x vocab, state,
        feed, attention weights rows x src_len)."""
        emb = self.tgt_embed(prev).unsqueeze(1)                   # batch x 1 x emb
        att, state, weights, feed = self.decoder(emb, state, enc.keys, enc.memory, enc.mask, feed)
        log_probs = torch.log_softmax(self.output(att.squeeze(1)), dim=-1)
        return log_probs, state, feed, weights.squeeze(1)


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
