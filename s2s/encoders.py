"""Bidirectional recurrent encoder over padded source batches."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def rnn_class(kind: str) -> type[nn.RNNBase]:
    return {"lstm": nn.LSTM, "gru": nn.GRU}[kind]


class RecurrentEncoder(nn.Module):
    """Embedded source -> memory and final states (padding never read: packed input).

    emb: batch x src_len x emb_size, lengths: batch (int64, on CPU or device)
    returns memory batch x src_len x 2*hidden and final batch x 2*hidden
    (top layer's last forward state joined with its first backward state).
    """

    def __init__(self, kind: str, emb_size: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.kind = kind
        self.layers = layers
        self.hidden = hidden
        self.rnn = rnn_class(kind)(emb_size, hidden, num_layers=layers, batch_first=True,
                                   bidirectional=True, dropout=dropout if layers > 1 else 0.0)
        self.output_size = 2 * hidden

    def forward(self, emb: torch.Tensor, lengths: torch.Tensor):
        packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, state = self.rnn(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=emb.size(1))
        h_n = state[0] if self.kind == "lstm" else state           # (layers*2) x batch x hidden
        top = h_n.view(self.layers, 2, emb.size(0), self.hidden)[-1]  # 2 x batch x hidden
        final = torch.cat([top[0], top[1]], dim=-1)                # batch x 2*hidden
        return memory, final
