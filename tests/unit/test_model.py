"""Shapes, masks, and the equivalence of parallel and step-by-step decoding."""
import pytest
import torch

from s2s.attention import build_attention
from s2s.decoders import reorder_state
from s2s.vocabulary import BOS_ID

from .conftest import random_batch, tiny_model

ATTENTIONS = ["bahdanau", "luong_general", "luong_dot"]


@pytest.mark.parametrize("kind", ATTENTIONS)
def test_attention_shapes_and_mask(kind):
    att = build_attention(kind, 12, 12)
    memory = torch.randn(2, 5, 12)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], dtype=torch.bool)
    contexts, weights = att(torch.randn(2, 3, 12), att.project_keys(memory), memory, mask)
    assert contexts.shape == (2, 3, 12) and weights.shape == (2, 3, 5)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 3))
    assert torch.all(weights[1, :, 2:] == 0)


def test_luong_dot_needs_matching_sizes():
    with pytest.raises(ValueError, match="luong_general"):
        build_attention("luong_dot", 10, 12)


@pytest.mark.parametrize("rnn", ["lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
def test_forward_shapes(rnn, layers):
    model = tiny_model(rnn=rnn, enc_layers=layers, dec_layers=layers)
    src, lengths = random_batch()
    logits = model(src, lengths, torch.randint(4, 13, (4, 6)))
    assert logits.shape == (4, 6, 13)
    state = model.decoder.init_state(model.encode(src, lengths).final)
    h = state[0] if rnn == "lstm" else state
    assert h.shape == (layers, 4, 10)                              # bridge output


def test_encoder_ignores_padding():
    model = tiny_model()
    src, lengths = random_batch()
    batched = model.encode(src, lengths)
    n = int(lengths[1])
    alone = model.encode(src[1:2, :n], lengths[1:2])
    assert torch.allclose(batched.memory[1, :n], alone.memory[0], atol=1e-6)
    assert torch.allclose(batched.final[1], alone.final[0], atol=1e-6)
    assert torch.all(batched.memory[1, n:] == 0)


@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("input_feeding", [False, True])
def test_teacher_forcing_equals_step_by_step(attention, input_feeding):
    """The parallel (or fed) training path computes what search computes one step at a time."""
    assert_teacher_forcing_matches_steps(tiny_model(attention=attention, input_feeding=input_feeding,
                                                    dec_hidden=12, enc_hidden=6))


def assert_teacher_forcing_matches_steps(model) -> None:
    """Every target step's training scores give the log-probs decode_step gives (test_pointer too)."""
    src, lengths = random_batch()
    tgt_in = torch.randint(4, 13, (4, 5))
    tgt_in[:, 0] = BOS_ID
    logits = model(src, lengths, tgt_in)
    enc = model.encode(src, lengths)
    state, feed = model.start(enc)
    for t in range(tgt_in.size(1)):
        log_probs, state, feed, _ = model.decode_step(tgt_in[:, t], state, feed, enc)
        assert torch.allclose(log_probs, torch.log_softmax(logits[:, t], -1), atol=1e-5)


def test_tied_embeddings_share_storage():
    model = tiny_model(tied_embeddings=True)
    assert model.output.weight.data_ptr() == model.tgt_embed.weight.data_ptr()
    untied = tiny_model(tied_embeddings=False)
    assert untied.output.weight.data_ptr() != untied.tgt_embed.weight.data_ptr()
    assert untied.output.in_features == 10                          # dec_hidden


def test_reorder_state_selects_rows():
    h = torch.arange(6.0).view(1, 3, 2)
    assert reorder_state((h, h), torch.tensor([2, 2]))[0].tolist() == [[[4, 5], [4, 5]]]
    assert reorder_state(h, torch.tensor([0])).shape == (1, 1, 2)


@pytest.mark.parametrize("rnn", ["lstm", "gru"])
def test_encoder_equals_packed_bidirectional_rnn(rnn):
    """The reverse-within-length encoder computes what a packed bi-RNN computes."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from s2s.encoders import RecurrentEncoder, rnn_class

    torch.manual_seed(0)
    encoder = RecurrentEncoder(rnn, 5, 4, layers=2, dropout=0.0)
    packed_rnn = rnn_class(rnn)(5, 4, num_layers=2, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for layer in range(2):
            for name, param in encoder.forward_rnns[layer].named_parameters():
                getattr(packed_rnn, f"{name[:-1]}{layer}").copy_(param)
            for name, param in encoder.backward_rnns[layer].named_parameters():
                getattr(packed_rnn, f"{name[:-1]}{layer}_reverse").copy_(param)
    emb, lengths = torch.randn(3, 6, 5), torch.tensor([6, 2, 4])
    memory, final = encoder(emb, lengths)
    out, state = packed_rnn(pack_padded_sequence(emb, lengths, batch_first=True,
                                                 enforce_sorted=False))
    expected, _ = pad_packed_sequence(out, batch_first=True, total_length=6)
    h_n = state[0] if rnn == "lstm" else state
    assert torch.allclose(memory, expected, atol=1e-6)
    assert torch.allclose(final, torch.cat([h_n[-2], h_n[-1]], -1), atol=1e-6)
