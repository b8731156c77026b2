"""Attentional recurrent decoder with a bridge from the encoder's final state."""
from __future__ import annotations

import torch
from torch import nn

from .attention import build_attention
from .coverage import CoveredState, RNNState
from .encoders import rnn_class

# The RNN's state, wrapped with the coverage vector when the model has coverage.
State = RNNState | CoveredState


class RecurrentDecoder(nn.Module):
    """Luong-style decoder: RNN step, attend with the new hidden state, combine.

    Without input feeding the RNN never sees earlier attention vectors, so
    teacher-forced training runs the RNN over the whole target at once and
    attends for all steps in one batched matmul. With input feeding the previous
    attentional vector joins each step's input, which forces a loop over steps.
    Coverage makes each step's attention depend on the earlier ones, so attention (only
    attention: the RNN still runs over all steps at once) loops over steps too.
    """

    def __init__(self, kind: str, emb_size: int, hidden: int, layers: int, mem_size: int,
                 attention: str, input_feeding: bool, dropout: float, att_out_size: int,
                 coverage: bool = False):
        super().__init__()
        self.coverage = coverage
        self.kind, self.layers, self.hidden = kind, layers, hidden
        self.input_feeding = input_feeding
        self.att_out_size = att_out_size
        n_states = 2 if kind == "lstm" else 1
        # bridge: encoder final (batch x mem) -> initial h (and c) for every decoder layer
        self.bridge = nn.Linear(mem_size, n_states * layers * hidden)
        rnn_in = emb_size + (att_out_size if input_feeding else 0)
        self.rnn = rnn_class(kind)(rnn_in, hidden, num_layers=layers, batch_first=True,
                                   dropout=dropout if layers > 1 else 0.0)
        self.attention = build_attention(attention, hidden, mem_size, coverage)
        self.combine = nn.Linear(hidden + mem_size, att_out_size, bias=False)
        self.dropout = nn.Dropout(dropout)

    def init_state(self, final: torch.Tensor) -> State:
        """final: batch x mem_size -> state tensors layers x batch x hidden."""
        batch = final.size(0)
        states = torch.tanh(self.bridge(final)).view(batch, -1, self.layers, self.hidden)
        states = states.permute(1, 2, 0, 3).contiguous()           # n_states x layers x batch x hidden
        return (states[0], states[1]) if self.kind == "lstm" else states[0]

    def start_state(self, final: torch.Tensor, src_len: int) -> State:
        """The bridge's state, plus zero coverage (batch x src_len) with coverage on."""
        state = self.init_state(final)
        if not self.coverage:
            return state
        return CoveredState(state, final.new_zeros(final.size(0), src_len))

    def init_feed(self, batch: int, like: torch.Tensor) -> torch.Tensor | None:
        if not self.input_feeding:
            return None
        return like.new_zeros(batch, 1, self.att_out_size)

    def forward(self, emb, state, keys, memory, mask, feed=None):
        """emb: batch x tgt_len x emb; returns (att_vectors batch x tgt_len x att_out,
        new state, attention weights batch x tgt_len x src_len, last att vector or None)."""
        if self.input_feeding:
            return self._fed_loop(emb, state, keys, memory, mask, feed)
        if isinstance(state, CoveredState):
            outputs, rnn_state = self.rnn(emb, state.rnn)         # batch x tgt x hidden
            att, weights, coverage = self._covered_loop(outputs, keys, memory, mask,
                                                        state.coverage)
            return att, CoveredState(rnn_state, coverage), weights, None
        outputs, state = self.rnn(emb, state)                     # batch x tgt x hidden
        att, weights = self._attend(outputs, keys, memory, mask)
        return att, state, weights, None

    def _fed_loop(self, emb, state, keys, memory, mask, feed):
        covered = isinstance(state, CoveredState)
        rnn_state, coverage = (state.rnn, state.coverage) if covered else (state, None)
        atts, weights = [], []
        for t in range(emb.size(1)):
            step_in = torch.cat([emb[:, t:t + 1], feed], dim=-1)  # batch x 1 x (emb+att)
            output, rnn_state = self.rnn(step_in, rnn_state)
            feed, w, coverage = self._attend_step(output, keys, memory, mask, coverage)
            atts.append(feed)
            weights.append(w)
        state = CoveredState(rnn_state, coverage) if covered else rnn_state
        return torch.cat(atts, 1), state, torch.cat(weights, 1), feed

    def _covered_loop(self, outputs, keys, memory, mask, coverage):
        """Only attention is sequential here; the combine layer then runs over all steps."""
        contexts, weights = [], []
        for t in range(outputs.size(1)):
            context, w = self._contexts(outputs[:, t:t + 1], keys, memory, mask, coverage)
            coverage = coverage + w.squeeze(1)
            contexts.append(context)
            weights.append(w)
        return self._combine(outputs, torch.cat(contexts, 1)), torch.cat(weights, 1), coverage

    def _attend_step(self, output, keys, memory, mask, coverage):
        """One step (output: rows x 1 x hidden); coverage rows x src_len or None."""
        att, w = self._attend(output, keys, memory, mask, coverage)
        return att, w, None if coverage is None else coverage + w.squeeze(1)

    def _attend(self, outputs, keys, memory, mask, coverage=None):
        contexts, weights = self._contexts(outputs, keys, memory, mask, coverage)
        return self._combine(outputs, contexts), weights

    def _contexts(self, outputs, keys, memory, mask, coverage=None):
        """outputs: rows x tgt x hidden, where rows is batch, or batch * k for k hypotheses
        per source in source-major order (beam search). Then the k hypotheses of a source
        query its memory together, so the memory is never copied k times.
        coverage (one step only, tgt = 1): rows x src_len.
        Returns contexts rows x tgt x mem and weights rows x tgt x src_len."""
        rows, steps = outputs.size(0), outputs.size(1)
        queries = outputs.reshape(keys.size(0), -1, outputs.size(2))  # batch x k*tgt x hidden
        if coverage is not None:
            coverage = coverage.reshape(keys.size(0), -1, coverage.size(-1))  # batch x k x src
        contexts, weights = self.attention(queries, keys, memory, mask, coverage)
        return contexts.reshape(rows, steps, -1), weights.reshape(rows, steps, -1)

    def _combine(self, outputs, contexts):
        """The attentional vector tanh(W [h; c]) (then dropout): rows x tgt x att_out."""
        return self.dropout(torch.tanh(self.combine(torch.cat([outputs, contexts], dim=-1))))


def reorder_state(state: State, index: torch.Tensor) -> State:
    """Select batch entries (beam search reordering) from a decoder state."""
    if isinstance(state, CoveredState):
        return CoveredState(reorder_state(state.rnn, index), state.coverage.index_select(0, index))
    if isinstance(state, tuple):
        return tuple(s.index_select(1, index) for s in state)
    return state.index_select(1, index)
