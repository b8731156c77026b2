"""Greedy and beam search: beam 1 == greedy, batched == one at a time, exactness."""
import itertools

import pytest
import torch

from s2s.search import beam_search, greedy_search, length_penalty
from s2s.vocabulary import BOS_ID, EOS_ID

from .conftest import random_batch, tiny_model


def _encode(model, src, lengths):
    return model.encode(src, lengths)


@pytest.mark.parametrize("input_feeding", [False, True])
def test_beam_one_equals_greedy(input_feeding):
    model = tiny_model(input_feeding=input_feeding, seed=3)
    src, lengths = random_batch(batch=6, seed=1)
    caps = torch.full((6,), 8)
    greedy = greedy_search(model, _encode(model, src, lengths), caps)
    beam = beam_search(model, _encode(model, src, lengths), caps, beam=1, alpha=0.0)
    assert [g[0].tokens for g in greedy] == [b[0].tokens for b in beam]
    assert len(greedy) == len(beam) == 6
    for g, b in zip(greedy, beam, strict=True):
        assert g[0].log_prob == pytest.approx(b[0].log_prob, abs=1e-5)


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_batched_equals_one_at_a_time(search):
    model = tiny_model(seed=5)
    src, lengths = random_batch(batch=5, seed=2)
    caps = torch.tensor([6, 9, 4, 7, 8])

    def run(s, l, c):
        enc = _encode(model, s, l)
        if search == "greedy":
            return greedy_search(model, enc, c)
        return beam_search(model, enc, c, beam=4, n_best=2, alpha=1.0)

    batched = run(src, lengths, caps)
    for i in range(5):
        n = int(lengths[i])
        alone = run(src[i:i + 1, :n], lengths[i:i + 1], caps[i:i + 1])[0]
        assert [h.tokens for h in alone] == [h.tokens for h in batched[i]]
        assert [h.score for h in alone] == pytest.approx([h.score for h in batched[i]], abs=1e-4)


@torch.no_grad()
def _sequence_log_prob(model, enc, tokens):
    state, feed = model.start(enc)
    prev, total = torch.tensor([BOS_ID]), 0.0
    for token in tokens + [EOS_ID]:
        log_probs, state, feed, _ = model.decode_step(prev, state, feed, enc)
        total += float(log_probs[0, token])
        prev = torch.tensor([token])
    return total


def test_beam_finds_brute_force_best():
    """Tiny vocab (unk + 3 symbols + eos) and cap 3: every hypothesis can be enumerated."""
    vocab = 7
    model = tiny_model(vocab=vocab, seed=11)
    with torch.no_grad():                       # sharpen the model so scores differ a lot
        model.output.weight.mul_(25)
    src, lengths = random_batch(batch=1, src_len=4, vocab=vocab, seed=4)
    enc = _encode(model, src, lengths)
    symbols = [1, 4, 5, 6]                     # everything but pad, bos, eos
    candidates = [list(seq) for n in range(4) for seq in itertools.product(symbols, repeat=n)]
    scored = [(_sequence_log_prob(model, enc, c), c) for c in candidates]
    best_score, best = max(scored)
    found = beam_search(model, enc, torch.tensor([3]), beam=len(candidates), alpha=0.0)[0][0]
    assert found.tokens == best
    assert found.log_prob == pytest.approx(best_score, abs=1e-4)
    greedy = greedy_search(model, enc, torch.tensor([3]))[0][0]
    assert greedy.log_prob <= found.log_prob + 1e-6


def test_n_best_sorted_and_caps_respected():
    model = tiny_model(seed=2)
    src, lengths = random_batch(batch=3)
    caps = torch.tensor([2, 5, 1])
    results = beam_search(model, _encode(model, src, lengths), caps, beam=5, n_best=3)
    assert len(results) == 3
    for hyps, cap in zip(results, caps.tolist(), strict=True):
        assert 1 <= len(hyps) <= 3
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        assert all(len(h.tokens) <= cap for h in hyps)
        assert all(BOS_ID not in h.tokens and 0 not in h.tokens for h in hyps)


def test_length_penalty():
    assert length_penalty(1, 0.0) == 1.0
    assert length_penalty(7, 1.0) == pytest.approx(2.0)
