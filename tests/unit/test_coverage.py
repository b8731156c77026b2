"""Coverage: the loss, the state it rides in, and its place in the attention scores."""
import pytest
import torch

from s2s.attention import build_attention
from s2s.batching import collate
from s2s.coverage import CoveredState, coverage_before_each_step, coverage_loss
from s2s.decoders import reorder_state
from s2s.loss import sequence_loss, training_loss

from .conftest import random_batch, tiny_model


def test_coverage_loss_is_zero_when_attention_never_repeats():
    # Each step attends to positions no earlier step touched (one-hot and split mass).
    weights = torch.tensor([[[1.0, 0, 0, 0, 0], [0, 0.5, 0.5, 0, 0], [0, 0, 0, 1.0, 0]]])
    assert coverage_loss(weights, torch.ones(1, 3, dtype=torch.bool)) == 0


def test_coverage_loss_counts_attention_given_again():
    weights = torch.tensor([[[1.0, 0, 0], [0.25, 0.75, 0], [0.5, 0.5, 0]]])
    # step 1: min(0.25, 1) = 0.25; step 2: min(0.5, 1.25) + min(0.5, 0.75) = 1.0
    assert coverage_loss(weights, torch.ones(1, 3, dtype=torch.bool)).item() == pytest.approx(1.25)
    masked = torch.tensor([[True, True, False]])                  # the third step is padding
    assert coverage_loss(weights, masked).item() == pytest.approx(0.25)
    assert coverage_before_each_step(weights)[0, 2].tolist() == [1.25, 0.75, 0.0]


@pytest.mark.parametrize("kind", ["bahdanau", "luong_general", "luong_dot"])
def test_coverage_enters_the_scores(kind):
    torch.manual_seed(0)
    att = build_attention(kind, 12, 12, coverage=True)
    with torch.no_grad():
        att.coverage_proj.weight.fill_(-3.0)                      # learned: avoid covered spots
    memory, queries = torch.randn(2, 5, 12), torch.randn(2, 1, 12)
    mask = torch.ones(2, 5, dtype=torch.bool)
    keys = att.project_keys(memory)
    _, fresh = att(queries, keys, memory, mask, torch.zeros(2, 1, 5))
    covered = torch.zeros(2, 1, 5)
    covered[:, :, 0] = 1.0
    _, after = att(queries, keys, memory, mask, covered)
    assert torch.allclose(after.sum(-1), torch.ones(2, 1))
    assert bool((after[:, 0, 0] != fresh[:, 0, 0]).all())


def test_covered_state_reorders_with_the_rnn_state():
    h = torch.arange(6.0).view(1, 3, 2)
    state = CoveredState((h, h), torch.arange(3.0).view(3, 1))
    picked = reorder_state(state, torch.tensor([2, 0]))
    assert picked.rnn[0].tolist() == [[[4, 5], [0, 1]]]
    assert picked.coverage.tolist() == [[2.0], [0.0]]


def test_search_state_accumulates_attention():
    model = tiny_model(coverage=True)
    src, lengths = random_batch()
    enc = model.encode(src, lengths)
    state, feed = model.start(enc)
    total = torch.zeros(4, src.size(1))
    for token in (2, 5, 6):
        _, state, feed, weights = model.decode_step(torch.full((4,), token), state, feed, enc)
        total += weights
    assert torch.allclose(state.coverage, total, atol=1e-6)


def test_training_loss_adds_weighted_coverage_loss():
    model = tiny_model(coverage=True).train()
    src = [[4, 5, 6, 7], [8, 9, 10]]
    batch = collate(src, [s[::-1] for s in src], [0, 1])
    torch.manual_seed(0)
    token = sequence_loss(model(batch.src, batch.src_len, batch.tgt_in), batch.tgt_out)
    logits, weights = model(batch.src, batch.src_len, batch.tgt_in, return_attention=True)
    cov = coverage_loss(weights, batch.tgt_out != 0)
    assert cov > 0
    assert training_loss(model, batch, 0.0, 2.0).item() == pytest.approx((token + 2 * cov).item(),
                                                                          rel=1e-5)
    assert training_loss(model, batch, 0.0, 0.0).item() == pytest.approx(token.item(), rel=1e-5)
