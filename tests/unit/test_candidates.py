"""Beam candidates from chunk maxima == a full top-k over beam x vocab; restrict's cheap writes."""
import pytest
import torch

import s2s.search as search_module
from s2s.candidates import chunk_size, top_candidates
from s2s.search import NEG_INF, beam_search, restrict
from s2s.vocabulary import BOS_ID, EOS_ID, PAD_ID

from .conftest import random_batch, tiny_model


def full_topk(scores, log_probs, k):
    """What beam search did before candidates.py: one topk over every score + log-prob."""
    batch, vocab = scores.size(0), log_probs.size(1)
    cand = (scores.view(-1, 1) + log_probs).view(batch, -1)
    top, ids = cand.topk(min(k, cand.size(1)), dim=1)
    return top, ids // vocab, ids % vocab


def _beam_inputs(batch, beam, vocab, seed):
    """Random log-probs; source 0 has one live hypothesis (the first step), source 1's
    rows allow only eos (at the cap), the rest are ordinary."""
    gen = torch.Generator().manual_seed(seed)
    log_probs = torch.log_softmax(3 * torch.randn(batch * beam, vocab, generator=gen), dim=-1)
    scores = -5 * torch.rand(batch, beam, generator=gen)
    scores[0, 1:] = NEG_INF
    log_probs[beam: 2 * beam] = NEG_INF
    log_probs[beam: 2 * beam, EOS_ID] = -torch.rand(beam, generator=gen)
    return scores, log_probs


@pytest.mark.parametrize("vocab", [7, 13, 64, 4000, 4001])
@pytest.mark.parametrize("beam", [1, 2, 5])
def test_chunked_candidates_equal_a_full_topk(vocab, beam):
    scores, log_probs = _beam_inputs(4, beam, vocab, seed=vocab + beam)
    got, want = top_candidates(scores, log_probs, 2 * beam), full_topk(scores, log_probs, 2 * beam)
    assert torch.equal(got[0], want[0])                     # the same sums, bit for bit
    finite = torch.isfinite(want[0])                        # -inf picks are arbitrary
    for g, w in zip(got[1:], want[1:]):
        assert torch.equal(g[finite], w[finite])


def test_more_candidates_asked_than_exist():
    scores, log_probs = _beam_inputs(3, 2, 5, seed=1)
    top, origin, token = top_candidates(scores, log_probs, 12)
    assert top.shape == origin.shape == token.shape == (3, 10)
    assert torch.equal(top, full_topk(scores, log_probs, 12)[0])


def test_chunk_size_divides_the_vocabulary():
    for vocab in (1, 2, 7, 13, 4000, 4001, 32000):
        assert vocab % chunk_size(vocab) == 0
    assert chunk_size(4000) == 160                           # near sqrt(32000)


def _old_restrict(log_probs, at_cap):
    log_probs[:, [PAD_ID, BOS_ID]] = NEG_INF
    eos = log_probs[:, EOS_ID].clone()
    log_probs[at_cap] = NEG_INF
    log_probs[:, EOS_ID] = eos
    return log_probs


@pytest.mark.parametrize("capped", [[], [1], [0, 2, 3]])
def test_restrict_writes_what_row_masking_wrote(capped):
    log_probs = torch.log_softmax(torch.randn(4, 9), dim=-1)
    at_cap = torch.zeros(4, dtype=torch.bool)
    at_cap[capped] = True
    assert torch.equal(restrict(log_probs.clone(), at_cap), _old_restrict(log_probs, at_cap))


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_search_finds_what_a_full_topk_finds(monkeypatch, alpha):
    model = tiny_model(vocab=40, seed=7)
    src, lengths = random_batch(batch=6, vocab=40, seed=3)
    caps = torch.tensor([3, 9, 5, 12, 7, 1])

    def run():
        return beam_search(model, model.encode(src, lengths), caps, beam=4, n_best=3, alpha=alpha)

    chunked = run()
    monkeypatch.setattr(search_module, "top_candidates", full_topk)
    full = run()
    for a, b in zip(chunked, full, strict=True):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        assert [h.score for h in a] == [h.score for h in b]
