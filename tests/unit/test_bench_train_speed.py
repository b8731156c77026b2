"""bench/train_speed.py's count of a fused RNN's arithmetic, which FlopCounterMode cannot see."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bench.train_speed import rnn_forward_flops


def written_out_flops(rnn: nn.RNNBase, rows: int) -> int:
    """FlopCounterMode's count of the gate matmuls of `rnn`, done by hand over `rows` steps."""
    directions = 2 if rnn.bidirectional else 1
    with FlopCounterMode(display=False) as counter:
        for layer in range(rnn.num_layers):
            for suffix in [""] + ["_reverse"] * (directions - 1):
                w_ih = getattr(rnn, f"weight_ih_l{layer}{suffix}")
                w_hh = getattr(rnn, f"weight_hh_l{layer}{suffix}")
                torch.mm(torch.zeros(rows, w_ih.size(1)), w_ih.t())
                torch.mm(torch.zeros(rows, w_hh.size(1)), w_hh.t())
    return counter.get_total_flops()


def test_fused_rnns_are_counted_like_their_gate_matmuls_written_out():
    x = torch.zeros(3, 4, 6)                                  # batch x steps x features: 12 rows
    for rnn in (nn.LSTM(6, 5, num_layers=2, bidirectional=True, batch_first=True),
                nn.GRU(6, 7, batch_first=True)):
        assert rnn_forward_flops(rnn, x) == written_out_flops(rnn, 12) > 0


def test_fused_rnns_are_invisible_to_flop_counter_mode():
    """Why the count exists: if torch starts counting fused RNNs, train_speed would count them twice."""
    with FlopCounterMode(display=False) as counter:
        nn.LSTM(6, 5, batch_first=True)(torch.zeros(3, 4, 6))
    assert counter.get_total_flops() == 0
