"""Batched greedy and beam search over a whole batch of sources at once.

Each source gets its own length cap (`max_lens`, output tokens before eos); at
the cap only eos is allowed, so every hypothesis ends. pad and bos are never
generated. Beam search keeps `beam` live hypotheses per source, flattened to
(batch * beam) rows so each step is one model call for the whole batch.

The search runs under inference_mode (no autograd version counters or view tracking on
the many small per-step tensors), and what it does between model calls is kept to few,
small passes: the next candidates come from candidates.py's two small top-ks, not one over
beam x vocab; `restrict` writes only what it bans; finished sources leave the batch
(`_BeamState.compact`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .candidates import top_candidates
from .model import Memory, Seq2Seq
from .decoders import reorder_state
from .vocabulary import BOS_ID, EOS_ID, PAD_ID

NEG_INF = float("-inf")


@dataclass
class Hypothesis:
    tokens: list[int]          # output ids, eos excluded
    score: float               # log-probability / length penalty (ranking score)
    log_prob: float            # sum of token log-probabilities, eos included
    attention: list[list[float]] = field(default_factory=list)  # tgt x src (greedy only)
    copy: list[float] = field(default_factory=list)  # per output token: P(copy) (greedy, copy attention)


def length_penalty(length: torch.Tensor | int, alpha: float) -> torch.Tensor | float:
    """GNMT length penalty ((5 + len) / 6) ** alpha; alpha = 0 ranks by raw log-prob."""
    return ((5.0 + length) / 6.0) ** alpha


def restrict(log_probs: torch.Tensor, at_cap: torch.Tensor) -> torch.Tensor:
    """Ban pad/bos everywhere; allow only eos for rows at their length cap.
    Works in place: callers pass the fresh output of a decoder step. It writes only the
    columns and rows it changes (masking rows by a boolean index would rewrite the whole
    rows x vocab tensor every step, and rows reach their cap only in the last steps)."""
    log_probs[:, PAD_ID] = NEG_INF
    log_probs[:, BOS_ID] = NEG_INF
    capped = at_cap.nonzero().squeeze(1)
    if capped.numel():
        eos = log_probs[capped, EOS_ID]
        log_probs.index_fill_(0, capped, NEG_INF)
        log_probs[capped, EOS_ID] = eos
    return log_probs


@torch.inference_mode()
def greedy_search(model: Seq2Seq, enc: Memory, max_lens: torch.Tensor,
                  alpha: float = 0.0, keep_attention: bool = False) -> list[list[Hypothesis]]:
    batch = max_lens.size(0)
    device = enc.memory.device
    max_lens = max_lens.to(device)
    state, feed = model.start(enc)
    prev = torch.full((batch,), BOS_ID, dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    log_prob = torch.zeros(batch, device=device)
    steps, weights = [], []
    copies: list[torch.Tensor] | None = [] if keep_attention else None
    for t in range(int(max_lens.max()) + 1):
        step_lp, state, feed, w = model.decode_step(prev, state, feed, enc, copies)
        best_lp, prev = restrict(step_lp, t >= max_lens).max(dim=-1)
        prev = prev.masked_fill(finished, PAD_ID)
        log_prob += best_lp.masked_fill(finished, 0.0)
        steps.append(prev)
        weights.append(w if keep_attention else None)
        finished |= prev == EOS_ID
        if bool(finished.all()):
            break
    return [[_greedy_hypothesis(b, steps, weights, copies, float(log_prob[b]), alpha)]
            for b in range(batch)]


def _greedy_hypothesis(b, steps, weights, copies, log_prob, alpha) -> Hypothesis:
    tokens = []
    for t, step in enumerate(steps):
        token = int(step[b])
        if token == EOS_ID:
            break
        tokens.append(token)
    attention = [weights[t][b].tolist() for t in range(len(tokens) + 1)
                 if t < len(weights) and weights[t] is not None]
    copy = [float(c[b]) for c in (copies or [])[: len(tokens) + 1]]
    return Hypothesis(tokens, log_prob / length_penalty(len(tokens) + 1, alpha), log_prob,
                      attention, copy)


class _BeamState:
    """Bookkeeping for live and finished hypotheses of every source in the batch."""

    def __init__(self, batch: int, beam: int, n_best: int, alpha: float, device):
        self.batch, self.beam, self.n_best, self.alpha = batch, beam, n_best, alpha
        self.scores = torch.full((batch, beam), NEG_INF, device=device)
        self.scores[:, 0] = 0.0                       # one live hypothesis to start
        self.history = torch.zeros(batch * beam, 0, dtype=torch.long, device=device)
        self.finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
        self.done = torch.zeros(batch, dtype=torch.bool, device=device)
        self.items = list(range(batch))          # live position -> source index

    def collect(self, t, top_scores, origin, token):
        """Move eos candidates ranked within the top `beam` into the finished pool."""
        ranks = torch.arange(top_scores.size(1), device=token.device).unsqueeze(0)
        ends = (token == EOS_ID) & (ranks < self.beam) & torch.isfinite(top_scores)
        ends &= ~self.done.unsqueeze(1)
        found = ends.nonzero().tolist()
        if not found:
            return
        # One conversion each instead of a tensor lookup per hypothesis.
        scores, origins = top_scores.tolist(), origin.tolist()
        rows = [b * self.beam + origins[b][k] for b, k in found]
        histories = self.history[rows].tolist()
        for (b, k), tokens in zip(found, histories):
            raw = scores[b][k]
            self.finished[self.items[b]].append(
                Hypothesis(tokens, raw / length_penalty(t + 1, self.alpha), raw))

    def advance(self, top_scores, origin, token) -> torch.Tensor:
        """Keep the best `beam` non-eos candidates; returns flat rows to reorder by."""
        live = top_scores.masked_fill(token == EOS_ID, NEG_INF)
        self.scores, pos = live.topk(self.beam, dim=1)            # batch x beam
        origin, token = origin.gather(1, pos), token.gather(1, pos)
        offsets = torch.arange(self.batch, device=token.device).unsqueeze(1) * self.beam
        rows = (offsets + origin).view(-1)
        self.history = torch.cat([self.history[rows], token.view(-1, 1)], dim=1)
        self.update_done()
        self.scores[self.done] = NEG_INF
        return rows, token.view(-1)

    def update_done(self) -> None:
        best_live = self.scores.max(dim=1).values.tolist()
        done = self.done.tolist()
        for b in range(self.batch):
            done[b] = done[b] or self._item_done(b, best_live[b])
        self.done = torch.tensor(done, device=self.scores.device)

    def _item_done(self, b: int, best_live: float) -> bool:
        pool = self.finished[self.items[b]]
        if best_live == NEG_INF or len(pool) >= self.beam:
            return True
        # With alpha = 0 a live score only falls as it grows, so it is an upper bound.
        return (self.alpha == 0 and len(pool) >= self.n_best
                and max(h.score for h in pool) >= best_live)

    def compact(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Drop sources that are done, so later steps compute only live ones.
        Returns (live sources kept, their flat rows), or None when every source is live."""
        keep = (~self.done).nonzero().squeeze(1)
        if keep.numel() == self.batch:
            return None
        offsets = torch.arange(self.beam, device=keep.device)
        rows = (keep.unsqueeze(1) * self.beam + offsets).view(-1)
        self.scores, self.done, self.history = self.scores[keep], self.done[keep], self.history[rows]
        self.items = [self.items[i] for i in keep.tolist()]
        self.batch = len(self.items)
        return keep, rows

    def results(self) -> list[list[Hypothesis]]:
        return [sorted(pool, key=lambda h: -h.score)[: self.n_best] for pool in self.finished]


@torch.inference_mode()
def beam_search(model: Seq2Seq, enc: Memory, max_lens: torch.Tensor, beam: int = 5,
                n_best: int = 1, alpha: float = 1.0) -> list[list[Hypothesis]]:
    batch = max_lens.size(0)
    device = enc.memory.device
    # The decoder state has a row per hypothesis; the encoder memory stays one per source.
    rows = torch.arange(batch, device=device).repeat_interleave(beam)
    caps = max_lens.to(device).repeat_interleave(beam)
    state, feed = model.start(enc)
    state = reorder_state(state, rows)
    feed = None if feed is None else feed.index_select(0, rows)
    beams = _BeamState(batch, beam, n_best, alpha, device)
    prev = torch.full((batch * beam,), BOS_ID, dtype=torch.long, device=device)
    for t in range(int(max_lens.max()) + 1):
        step_lp, state, feed, _ = model.decode_step(prev, state, feed, enc)
        step_lp = restrict(step_lp, t >= caps)
        top_scores, origin, token = top_candidates(beams.scores, step_lp, 2 * beam)
        beams.collect(t, top_scores, origin, token)
        rows, prev = beams.advance(top_scores, origin, token)
        if bool(beams.done.all()):
            break
        kept = beams.compact()
        if kept is not None:                       # reorder and drop finished sources at once
            sources, kept_rows = kept
            rows, prev, caps = rows[kept_rows], prev[kept_rows], caps[kept_rows]
            enc = enc.select(sources)
        state = reorder_state(state, rows)
        feed = None if feed is None else feed.index_select(0, rows)
    return beams.results()


def search(model: Seq2Seq, enc: Memory, max_lens: torch.Tensor, beam: int = 1, n_best: int = 1,
           alpha: float = 1.0, keep_attention: bool = False) -> list[list[Hypothesis]]:
    """Greedy when beam == 1 (same output as beam_search with beam 1, but cheaper)."""
    if beam == 1:
        return greedy_search(model, enc, max_lens, alpha, keep_attention)
    return beam_search(model, enc, max_lens, beam, n_best, alpha)
