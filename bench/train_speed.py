"""Training speed: target tokens/s of wall time, s2s's model vs plain reference loops.

    .venv/bin/python bench/train_speed.py [--steps 20] [--rounds 3]

All variants train on the same Bible en->fr batches with the sizes of the peers benchmark
(bench/peers/settings.py: BPE 8k shared, 4,000-token batches, whatever the shipped config's
recipe) and the same model size as Joey NMT's RNN recipe (bi-LSTM 256 encoder, LSTM 512
decoder, 256 embeddings). Variants run in interleaved rounds so the
machine's noise hits them alike. Each variant's arithmetic is counted on the untimed warm-up
batches (MFLOP per target token: FlopCounterMode for the matmuls it sees, plus each fused RNN
call's gate matmuls, which it does not see), so the table also gives GFLOP/s: two variants at
the same GFLOP/s differ in speed only by the work their architecture asks for.
  s2s-parallel   the s2s model without input feeding (decoder over all steps at once)
  s2s-feeding    the s2s model with input feeding (a loop over target steps)
  s2s-joey-arch  input feeding + Bahdanau attention: Joey NMT's RNN architecture in s2s
  s2s-onmt-arch  input feeding + an untied output layer reading the 512-wide attentional vector:
                 OpenNMT-py's RNN architecture (as bench/peers.py configures it) in s2s
  plain-fused    a minimal hand-written PyTorch seq2seq (fused LSTMs, dot attention)
  plain-stepwise the same minimal model decoding one LSTMCell step at a time in Python
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import print_table, write_results  # noqa: E402
from bench.peers.settings import FULL as PEERS  # noqa: E402
from s2s.config import load_config  # noqa: E402
from s2s.corpus import read_corpus  # noqa: E402
from s2s.loss import sequence_loss  # noqa: E402
from s2s.model import build_model  # noqa: E402
from s2s.training import LRSchedule, encode_corpus, set_threads, train_step  # noqa: E402
from s2s.vocabulary import PAD_ID, learn_vocabularies  # noqa: E402

JOEY_TOKENS_PER_S = 380.0      # Joey NMT 2.3 RNN on this machine kind (issue #2)


class PlainSeq2Seq(nn.Module):
    """The reference: what a PyTorch user writes first, with nothing from s2s."""

    def __init__(self, vocab: int, emb: int = 256, enc: int = 256, dec: int = 512,
                 stepwise: bool = False):
        super().__init__()
        self.stepwise = stepwise
        self.embed = nn.Embedding(vocab, emb, padding_idx=PAD_ID)
        self.encoder = nn.LSTM(emb, enc, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(2 * enc, dec)
        self.decoder = nn.LSTM(emb, dec, batch_first=True)
        self.cell = nn.LSTMCell(emb, dec)
        self.key = nn.Linear(2 * enc, dec, bias=False)
        self.combine = nn.Linear(dec + 2 * enc, emb)
        self.out = nn.Linear(emb, vocab)

    def forward(self, src, src_len, tgt_in):
        memory, (h, _) = self.encoder(self.embed(src))
        h0 = torch.tanh(self.bridge(torch.cat([h[0], h[1]], -1)))
        emb = self.embed(tgt_in)
        if self.stepwise:
            outputs = self._stepwise(emb, h0)
        else:
            outputs, _ = self.decoder(emb, (h0.unsqueeze(0), torch.zeros_like(h0).unsqueeze(0)))
        scores = torch.bmm(outputs, self.key(memory).transpose(1, 2))
        scores = scores.masked_fill((src == PAD_ID).unsqueeze(1), float("-inf"))
        context = torch.bmm(torch.softmax(scores, -1), memory)
        return self.out(torch.tanh(self.combine(torch.cat([outputs, context], -1))))

    def _stepwise(self, emb, h0):
        h, c, outs = h0, torch.zeros_like(h0), []
        for t in range(emb.size(1)):
            h, c = self.cell(emb[:, t], (h, c))
            outs.append(h)
        return torch.stack(outs, 1)


def plain_step(model, batch, optimizer):
    logits = model(batch.src, batch.src_len, batch.tgt_in)
    loss = sequence_loss(logits, batch.tgt_out, 0.1)
    optimizer.zero_grad()
    (loss / batch.ntokens).backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()


def variants(cfg, vocab_size):
    m = cfg.model
    make = lambda **kw: build_model(m.replace(**kw), vocab_size, vocab_size, True, 0)  # noqa: E731
    return {
        "s2s-parallel": make(input_feeding=False),
        "s2s-feeding": make(input_feeding=True),
        "s2s-joey-arch": make(input_feeding=True, attention="bahdanau"),
        "s2s-onmt-arch": make(input_feeding=True, tied_embeddings=False),
        "plain-fused": PlainSeq2Seq(vocab_size),
        "plain-stepwise": PlainSeq2Seq(vocab_size, stepwise=True),
    }


class Trainer:
    """One variant's model with its optimizer, stepping through batches."""

    def __init__(self, name, model, cfg):
        self.name, self.model, self.cfg = name, model, cfg
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        self.schedule = LRSchedule(self.optimizer, cfg.training)
        model.train()

    def step(self, batch) -> None:
        if self.name.startswith("s2s"):
            train_step(self.model, batch, self.optimizer, self.schedule, self.cfg.training)
        else:
            plain_step(self.model, batch, self.optimizer)

    def time_steps(self, batches) -> tuple[int, float]:
        tokens, started = 0, time.perf_counter()
        for batch in batches:
            self.step(batch)
            tokens += batch.ntokens
        return tokens, time.perf_counter() - started

    def flops_per_token(self, batches) -> float:
        """Training FLOPs per target token over `batches` (which this trains on): the matmuls
        FlopCounterMode sees, forward and backward, plus 3x the forward gate matmuls of every
        fused RNN call (the backward costs about twice the forward), which it does not see."""
        rnn_flops = []
        hooks = [m.register_forward_hook(lambda m, inputs, _: rnn_flops.append(3 * rnn_forward_flops(m, inputs[0])))
                 for m in self.model.modules() if isinstance(m, nn.RNNBase)]
        try:
            with FlopCounterMode(display=False) as counter:
                for batch in batches:
                    self.step(batch)
        finally:
            for hook in hooks:
                hook.remove()
        return (counter.get_total_flops() + sum(rnn_flops)) / sum(b.ntokens for b in batches)


def rnn_forward_flops(rnn: nn.RNNBase, x) -> int:
    """2 x the multiply-adds of a fused LSTM/GRU's gate matmuls over input `x` (batch x steps x
    features, or packed); element-wise gate math is left out, as for every other op."""
    rows = x.data.size(0) if isinstance(x, PackedSequence) else x.size(0) * x.size(1)
    gates = {"LSTM": 4, "GRU": 3}[rnn.mode]
    directions = 2 if rnn.bidirectional else 1
    per_row = 0
    for layer in range(rnn.num_layers):
        inputs = rnn.input_size if layer == 0 else directions * rnn.hidden_size
        per_row += directions * 2 * gates * rnn.hidden_size * (inputs + rnn.hidden_size)
    return rows * per_row


def peer_sized(cfg, args):
    """`cfg` with the vocabulary and batch size the speed comparison is made at."""
    tokenizer = cfg.data.tokenizer.replace(vocab_size=args.vocab_size)
    return cfg.replace(data=cfg.data.replace(tokenizer=tokenizer),
                       training=cfg.training.replace(batch_tokens=args.batch_tokens))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/bible-en-fr.yaml")
    parser.add_argument("--steps", type=int, default=15, help="timed batches per variant per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--vocab-size", type=int, default=PEERS.vocab_size)
    parser.add_argument("--batch-tokens", type=int, default=PEERS.batch_tokens)
    args = parser.parse_args()
    set_threads(args.threads)
    cfg = peer_sized(load_config(args.config), args)
    table = read_corpus(cfg.data.train)
    src_vocab, tgt_vocab = learn_vocabularies(table.column("src").to_pylist(),
                                              table.column("tgt").to_pylist(), cfg.data.tokenizer)
    corpus = encode_corpus(table, src_vocab, tgt_vocab, cfg.data.max_src_len, cfg.data.max_tgt_len)
    order = corpus.batches(cfg.training.batch_tokens, seed=1, epoch=0)
    trainers = [Trainer(name, model, cfg) for name, model in variants(cfg, len(src_vocab)).items()]
    totals = {t.name: [0, 0.0] for t in trainers}
    warm_up = [corpus.collate(b) for b in order[:2]]     # untimed: counts the arithmetic instead
    flops = {t.name: t.flops_per_token(warm_up) for t in trainers}
    for r in range(1, args.rounds + 1):
        batches = [corpus.collate(b) for b in order[r * args.steps:(r + 1) * args.steps]]
        for trainer in trainers:
            tokens, seconds = trainer.time_steps(batches)
            totals[trainer.name][0] += tokens
            totals[trainer.name][1] += seconds
    report(totals, flops, args)


def report(totals, flops, args) -> None:
    rates = {name: tokens / seconds for name, (tokens, seconds) in totals.items()}
    rows = [[name, rate, rate / rates["plain-fused"], rate / rates["plain-stepwise"],
             rate / JOEY_TOKENS_PER_S, flops[name] / 1e6, rate * flops[name] / 1e9]
            for name, rate in rates.items()]
    print_table(["variant", "target tok/s", "x plain-fused", "x plain-stepwise", "x Joey (380)",
                 "MFLOP/tok", "GFLOP/s"], rows)
    path = write_results("train_speed", {"args": vars(args), "tokens_per_s": rates,
                                         "train_flops_per_token": flops,
                                         "joey_reference_tokens_per_s": JOEY_TOKENS_PER_S})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
