"""Attentional recurrent decoder with a bridge from the encoder's final state."""
from __future__ import annotations

import torch
from torch import nn

from .attention import build_attention
from .encoders import rnn_class

# An LSTM state is (h, c); a GRU state is h. Both: layers x batch x hidden.
State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class RecurrentDecoder(nn.Module):
    """Luong-style decoder: RNN step, attend with the new hidden state, combine.

    Without input feeding the RNN never sees earlier attention vectors, so
    teacher-forced training runs the RNN over the whole target at once and
    attends for all steps in one batched matmul. With input feeding the previous
    attentional vector joins each step's input, which forces a loop over steps.
    """

    def __init__(self, kind: str, emb_size: int, hidden: int, layers: int, mem_size: int,
                 attention: str, input_feeding: bool, dropout: float, att_out_size: int):
        super().__init__()
        self.kind, self.layers, self.hidden = kind, layers, hidden
        self.input_feeding = input_feeding
        self.att_out_size = att_out_size
        n_states = 2 if kind == "lstm" else 1
        # bridge: encoder final (batch x mem) -> initial h (and c) for every decoder layer
        self.bridge = nn.Linear(mem_size, n_states * layers * hidden)
        rnn_in = emb_size + (att_out_size if input_feeding else 0)
        self.rnn = rnn_class(kind)(rnn_in, hidden, num_layers=layers, batch_first=True,
                                   dropout=dropout if layers > 1 else 0.0)
        self.attention = build_attention(attention, hidden, mem_size)
        self.combine = nn.Linear(hidden + mem_size, att_out_size, bias=False)
        self.dropout = nn.Dropout(dropout)

    def init_state(self, final: torch.Tensor) -> State:
        """final: batch x mem_size -> state tensors layers x batch x hidden."""
        batch = final.size(0)
        states = torch.tanh(self.bridge(final)).view(batch, -1, self.layers, self.hidden)
        states = states.permute(1, 2, 0, 3).contiguous()           # n_states x layers x batch x hidden
        return (states[0], states[1]) if self.kind == "lstm" else states[0]

    def init_feed(self, batch: int, like: torch.Tensor) -> torch.Tensor | None:
        if not self.input_feeding:
            return None
        return like.new_zeros(batch, 1, self.att_out_size)

    def forward(self, emb, state, keys, memory, mask, feed=None):
        """emb: batch x tgt_len x emb; returns (att_vectors batch x tgt_len x att_out,
        new state, attention weights batch x tgt_len x src_len, last att vector or None)."""
        if not self.input_feeding:
            outputs, state = self.rnn(emb, state)                 # batch x tgt x hidden
            att, weights = self._attend(outputs, keys, memory, mask)
            return att, state, weights, None
        return self._fed_loop(emb, state, keys, memory, mask, feed)

    def _fed_loop(self, emb, state, keys, memory, mask, feed):
        atts, weights = [], []
        for t in range(emb.size(1)):
            step_in = torch.cat([emb[:, t:t + 1], feed], dim=-1)  # batch x 1 x (emb+att)
            output, state = self.rnn(step_in, state)
            feed, w = self._attend(output, keys, memory, mask)
            atts.append(feed)
            weights.append(w)
        return torch.cat(atts, 1), state, torch.cat(weights, 1), feed

    def _attend(self, outputs, keys, memory, mask):
        """outputs: rows x tgt x hidden, where rows is batch, or batch * k for k hypotheses
        per source in source-major order (beam search). Then the k hypotheses of a source
        query its memory together, so the memory is never copied k times."""
        rows, steps = outputs.size(0), outputs.size(1)
        queries = outputs.reshape(keys.size(0), -1, outputs.size(2))  # batch x k*tgt x hidden
        contexts, weights = self.attention(queries, keys, memory, mask)
        contexts = contexts.reshape(rows, steps, -1)                # rows x tgt x mem
        att = torch.tanh(self.combine(torch.cat([outputs, contexts], dim=-1)))
        return self.dropout(att), weights.reshape(rows, steps, -1)


def reorder_state(state: State, index: torch.Tensor) -> State:
    """Select batch entries (beam search reordering) from a decoder state."""
    if isinstance(state, tuple):
        return tuple(s.index_select(1, index) for s in state)
    return state.index_select(1, index)
