"""Copy attention: a proper distribution, the same in training and search, and worth it
on a copy task over many rare tokens."""
import pytest
import torch

from s2s.batching import collate
from s2s.config import TrainingConfig
from s2s.pointer import PointerGenerator
from s2s.search import beam_search, greedy_search
from s2s.training import LRSchedule, train_step
from s2s.vocabulary import BOS_ID, EOS_ID

from .conftest import random_batch, tiny_model
from .test_model import assert_teacher_forcing_matches_steps

ATTENTIONS = ["bahdanau", "luong_general"]


def test_pointer_generator_output_is_a_distribution():
    torch.manual_seed(0)
    pointer = PointerGenerator(att_size=6, emb_size=4)
    weights = torch.softmax(torch.randn(3, 5, 7), dim=-1)
    weights[2, :, 4:] = 0                                          # padding gets no attention
    weights[2] /= weights[2].sum(-1, keepdim=True)
    src = torch.randint(4, 11, (3, 7))
    src[0, :3] = 5                                                 # one id at several positions
    log_probs, copy = pointer(torch.randn(3, 5, 11), torch.randn(3, 5, 6), torch.randn(3, 5, 4),
                              weights, src)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(3, 5), atol=1e-5)
    assert copy.shape == (3, 5) and bool(((copy > 0) & (copy < 1)).all())


@pytest.mark.parametrize("coverage", [False, True])
def test_model_scores_are_log_probabilities(coverage):
    model = tiny_model(copy_attention=True, coverage=coverage)
    src, lengths = random_batch()
    scores = model(src, lengths, torch.randint(4, 13, (4, 6)))
    assert torch.allclose(scores.exp().sum(-1), torch.ones(4, 6), atol=1e-5)


def test_copy_mass_goes_to_the_source_ids():
    """With the gate forced shut the output is exactly the attention, moved onto source ids."""
    model = tiny_model(copy_attention=True)
    with torch.no_grad():
        model.pointer.gate.weight.zero_()
        model.pointer.gate.bias.fill_(-50.0)                      # p_gen ~ 0: copy only
    src, lengths = random_batch()
    enc = model.encode(src, lengths)
    state, feed = model.start(enc)
    log_probs, _, _, weights = model.decode_step(torch.full((4,), BOS_ID), state, feed, enc)
    expected = torch.zeros(4, 13).scatter_add(1, src, weights)
    assert torch.allclose(log_probs.exp(), expected, atol=1e-5)


@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("input_feeding", [False, True])
@pytest.mark.parametrize("coverage", [False, True])
def test_teacher_forcing_equals_step_by_step(attention, input_feeding, coverage):
    assert_teacher_forcing_matches_steps(tiny_model(attention=attention, input_feeding=input_feeding,
                                                    copy_attention=True, coverage=coverage))


@pytest.mark.parametrize("coverage", [False, True])
@pytest.mark.parametrize("input_feeding", [False, True])
def test_beam_one_equals_greedy_with_copy(coverage, input_feeding):
    model = tiny_model(copy_attention=True, coverage=coverage, input_feeding=input_feeding, seed=3)
    src, lengths = random_batch(batch=6, seed=1)
    caps = torch.full((6,), 8)
    greedy = greedy_search(model, model.encode(src, lengths), caps)
    beam = beam_search(model, model.encode(src, lengths), caps, beam=1, alpha=0.0)
    assert [g[0].tokens for g in greedy] == [b[0].tokens for b in beam]
    assert len(greedy) == len(beam)
    for g, b in zip(greedy, beam, strict=True):
        assert g[0].log_prob == pytest.approx(b[0].log_prob, abs=1e-5)


@pytest.mark.parametrize("attention, input_feeding", [("luong_general", False), ("bahdanau", True)])
def test_batched_beam_equals_one_at_a_time_with_copy_and_coverage(attention, input_feeding):
    model = tiny_model(copy_attention=True, coverage=True, seed=5, attention=attention,
                       input_feeding=input_feeding)
    src, lengths = random_batch(batch=5, seed=2)
    caps = torch.tensor([6, 9, 4, 7, 8])
    batched = beam_search(model, model.encode(src, lengths), caps, beam=4, n_best=2)
    for i in range(5):
        n = int(lengths[i])
        alone = beam_search(model, model.encode(src[i:i + 1, :n], lengths[i:i + 1]),
                            caps[i:i + 1], beam=4, n_best=2)[0]
        assert [h.tokens for h in alone] == [h.tokens for h in batched[i]]
        assert [h.score for h in alone] == pytest.approx([h.score for h in batched[i]], abs=1e-4)


def test_greedy_keeps_the_copy_probability_per_output_token():
    model = tiny_model(copy_attention=True, seed=2)
    src, lengths = random_batch(batch=2)
    hyps = greedy_search(model, model.encode(src, lengths), torch.tensor([4, 4]),
                         keep_attention=True)
    for [hyp] in hyps:
        assert len(hyp.copy) == len(hyp.attention) == len(hyp.tokens) + 1
        assert all(0.0 < c < 1.0 for c in hyp.copy)
    plain = greedy_search(tiny_model(), model.encode(src, lengths), torch.tensor([4, 4]),
                          keep_attention=True)
    assert plain[0][0].copy == []


# ----------------------------------------------------------------------------- the copy task

VOCAB, STEPS = 1000, 100


def _copy_examples(n: int, seed: int) -> list[list[int]]:
    """Sequences of 4-7 tokens drawn from ~1,000 ids: each id is seen ~18 times in training."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(4, 8, (n,), generator=gen).tolist()
    return [torch.randint(4, VOCAB, (k,), generator=gen).tolist() for k in lengths]


def _train_and_score(copy_attention: bool) -> float:
    torch.manual_seed(0)
    model = tiny_model(vocab=VOCAB, seed=0, emb_size=32, enc_hidden=32, dec_hidden=64,
                       copy_attention=copy_attention)
    train, test = _copy_examples(STEPS * 32, seed=1), _copy_examples(200, seed=2)
    cfg = TrainingConfig(lr=0.005, warmup_steps=10, label_smoothing=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    schedule = LRSchedule(optimizer, cfg)
    for step in range(STEPS):
        batch = collate(train, train, range(step * 32, (step + 1) * 32))
        train_step(model, batch, optimizer, schedule, cfg)
    model.eval()
    probe = collate(test, test, range(len(test)))
    hyps = greedy_search(model, model.encode(probe.src, probe.src_len), torch.full((200,), 8))
    return sum(h[0].tokens == ref for h, ref in zip(hyps, test, strict=True)) / len(test)


@pytest.fixture
def one_thread():
    # Two threads on a loaded 2-core machine are many times slower than one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_copy_attention_beats_plain_attention_on_rare_tokens(one_thread):
    """Same model, data, seed and step count: copying learns the task, generating does not."""
    with_copy, without = _train_and_score(True), _train_and_score(False)
    assert with_copy > without + 0.3, (with_copy, without)
    assert with_copy > 0.5


# ----------------------------------------------------------------------------- checkpoint, CLI

def _copy_checkpoint(tmp_path):
    from s2s.checkpoint import save_checkpoint
    from s2s.config import ExperimentConfig, TokenizerConfig
    from s2s.vocabulary import learn_vocabulary

    from .conftest import tiny_model_config

    vocab = learn_vocabulary(["a b c d e f g h i"] * 3, TokenizerConfig(type="word"))
    model = tiny_model(vocab=len(vocab), copy_attention=True, coverage=True,
                       attention="bahdanau", input_feeding=True)
    cfg = ExperimentConfig(name="copy").replace(model=tiny_model_config(
        copy_attention=True, coverage=True, attention="bahdanau", input_feeding=True))
    return save_checkpoint(tmp_path / "copy", model, vocab, vocab, cfg), model


def test_checkpoint_keeps_copy_and_coverage(tmp_path):
    from s2s.checkpoint import load_checkpoint

    path, model = _copy_checkpoint(tmp_path)
    loaded = load_checkpoint(path)
    assert loaded.config.model.copy_attention and loaded.config.model.coverage
    src, lengths = random_batch(vocab=13)
    tgt = torch.randint(4, 13, (4, 3), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(loaded.model(src, lengths, tgt), model(src, lengths, tgt))


def test_old_checkpoints_without_the_new_keys_still_load(tmp_path):
    from s2s.checkpoint import load_checkpoint, save_checkpoint
    from s2s.config import ExperimentConfig, TokenizerConfig
    from s2s.vocabulary import learn_vocabulary

    from .conftest import tiny_model_config

    vocab = learn_vocabulary(["a b c d e f g h i"] * 3, TokenizerConfig(type="word"))
    cfg = ExperimentConfig(name="old").replace(model=tiny_model_config())
    path = save_checkpoint(tmp_path / "old", tiny_model(vocab=len(vocab)), vocab, vocab, cfg)
    new_keys = ("copy_attention", "coverage", "coverage_weight", "average_last", "lr_schedule",
                "byte_fallback", "sampling_alpha")
    text = (path / "config.yaml").read_text()
    (path / "config.yaml").write_text("".join(
        line for line in text.splitlines(keepends=True) if line.strip().split(":")[0] not in new_keys))
    loaded = load_checkpoint(path)
    assert loaded.model.pointer is None and not loaded.config.model.coverage


def test_attention_command_draws_the_copy_probability(tmp_path, capsys):
    from s2s.cli import main

    path, _ = _copy_checkpoint(tmp_path)
    png = tmp_path / "att.png"
    assert main(["attention", "--model", str(path), "--text", "a b c", "--out", str(png),
                 "--device", "cpu"]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG" and "copy probability" in capsys.readouterr().out


def test_translator_decodes_with_copy_and_coverage(tmp_path):
    from s2s.prediction import Translator

    path, _ = _copy_checkpoint(tmp_path)
    translator = Translator.from_checkpoint(path, device="cpu")
    [greedy], [beam] = translator.translate(["a b c"], beam=1, keep_attention=True), \
        translator.translate(["a b c"], beam=3)
    assert len(greedy[0].copy) == len(greedy[0].tokens) + 1
    assert isinstance(beam[0].text, str)


def test_byte_fallback_gives_unseen_characters_copyable_ids():
    """The docstring's promise: with byte fallback no source piece is unk, so copying the
    pieces of an unseen character spells it exactly."""
    from s2s.config import TokenizerConfig
    from s2s.vocabulary import UNK_ID, learn_vocabulary

    texts = [f"the quick brown fox jumps over the lazy dog {i}" for i in range(100)]
    vocab = learn_vocabulary(texts, TokenizerConfig(type="unigram", vocab_size=400,
                                                    byte_fallback=True))
    ids = vocab.encode(["the fox ☃ ø"])[0]
    assert UNK_ID not in ids and vocab.decode([ids]) == ["the fox ☃ ø"]


def test_copy_needs_a_shared_vocabulary():
    from s2s.config import ConfigError, ExperimentConfig, from_dict

    with pytest.raises(ConfigError, match="copy_attention"):
        from_dict(ExperimentConfig, {"data": {"train": "x.tsv", "tokenizer": {"shared": False}},
                                     "model": {"copy_attention": True}}).validate()
    with pytest.raises(ConfigError, match="byte_fallback"):
        from_dict(ExperimentConfig, {"data": {"train": "x.tsv", "tokenizer": {
            "type": "word", "byte_fallback": True}}}).validate()
    with pytest.raises(ConfigError, match="unknown config key 'model.copy'"):
        from_dict(ExperimentConfig, {"model": {"copy": True}})
