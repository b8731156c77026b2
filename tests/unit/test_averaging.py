"""Checkpoint averaging: the mean of the weights, the kept checkpoints, the CLI, the trainer."""
import pytest
import torch

from s2s.averaging import (RecentWeights, average_checkpoints, average_weights, export_average,
                           load_weights, weights_of)
from s2s.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from s2s.cli import main
from s2s.config import ExperimentConfig, TokenizerConfig
from s2s.vocabulary import learn_vocabulary

from ..conftest import toy_config
from .conftest import random_batch, tiny_model, tiny_model_config


@pytest.fixture(scope="module")
def vocab():
    return learn_vocabulary(["a b c d e f g h i"] * 3, TokenizerConfig(type="word"))


def _save(path, model, vocab, **model_overrides):
    cfg = ExperimentConfig(name="tiny").replace(model=tiny_model_config(**model_overrides))
    return save_checkpoint(path, model, vocab, vocab, cfg)


def _outputs(model, vocab):
    src, lengths = random_batch(vocab=len(vocab))
    tgt = torch.randint(4, len(vocab), (4, 3), generator=torch.Generator().manual_seed(0))
    return model(src, lengths, tgt)


def test_averaging_two_identical_checkpoints_gives_the_same_model(tmp_path, vocab):
    model = tiny_model(vocab=len(vocab), seed=1, copy_attention=True, coverage=True)
    kwargs = {"copy_attention": True, "coverage": True}
    paths = [_save(tmp_path / name, model, vocab, **kwargs) for name in ("a", "b")]
    averaged = load_checkpoint(average_checkpoints(paths, tmp_path / "avg")).model
    for name, value in weights_of(model).items():
        assert torch.equal(weights_of(averaged)[name], value), name
    assert torch.equal(_outputs(averaged, vocab), _outputs(model, vocab))


def test_average_is_the_mean_of_the_weights(tmp_path, vocab):
    one, two = tiny_model(vocab=len(vocab), seed=1), tiny_model(vocab=len(vocab), seed=2)
    paths = [_save(tmp_path / "one", one, vocab), _save(tmp_path / "two", two, vocab)]
    averaged = weights_of(load_checkpoint(average_checkpoints(paths, tmp_path / "avg")).model)
    for name, value in weights_of(one).items():
        assert torch.allclose(averaged[name], (value + weights_of(two)[name]) / 2, atol=1e-7)
    # Tied weights stay tied: one tensor behind the embeddings and the output layer.
    loaded = load_checkpoint(tmp_path / "avg").model
    assert loaded.output.weight.data_ptr() == loaded.tgt_embed.weight.data_ptr()


def test_incompatible_checkpoints_are_refused(tmp_path, vocab):
    small = _save(tmp_path / "small", tiny_model(vocab=len(vocab)), vocab)
    wide = _save(tmp_path / "wide", tiny_model(vocab=len(vocab), dec_hidden=12), vocab,
                 dec_hidden=12)
    with pytest.raises(CheckpointError, match="different model config"):
        average_checkpoints([small, wide], tmp_path / "avg")
    with pytest.raises(ValueError, match="nothing"):
        average_weights([])


def test_load_weights_refuses_other_names(vocab):
    model = tiny_model(vocab=len(vocab))
    with pytest.raises(CheckpointError, match="do not match"):
        load_weights(model, {"nope": torch.zeros(1)})


def test_recent_weights_keep_the_last_n_on_disk_and_survive_a_restart(tmp_path, vocab):
    models = [tiny_model(vocab=len(vocab), seed=s) for s in range(4)]
    save = lambda path, model: _save(path, model, vocab)  # noqa: E731
    recent = RecentWeights(2, tmp_path / "recent", save)
    for step, model in zip((10, 20, 30), models):
        recent.add(model, step)
    recent.add(models[3], 30)                                     # saved again at the same step
    assert recent.steps() == [20, 30]
    assert sorted(p.name for p in (tmp_path / "recent").iterdir()) == ["step-000000020",
                                                                         "step-000000030"]
    again = RecentWeights(2, tmp_path / "recent", save)
    assert again.steps() == [20, 30]
    expected = average_weights([weights_of(models[1]), weights_of(models[3])])
    for name, value in again.average().items():
        assert torch.allclose(value, expected[name], atol=1e-7)


def test_recent_weights_in_memory_and_export(tmp_path, vocab):
    model = tiny_model(vocab=len(vocab), seed=3)
    recent = RecentWeights(3)
    for step in (1, 2):
        recent.add(model, step)
    with torch.no_grad():
        model.output.weight.add_(1.0)                             # training went on afterwards
    cfg = ExperimentConfig(name="tiny").replace(model=tiny_model_config())
    summary = export_average(recent, model, vocab, vocab, cfg, tmp_path / "avg",
                             lambda m: {"bleu": 1.0})
    assert summary["steps"] == [1, 2] and summary["metrics"] == {"bleu": 1.0}
    loaded = load_checkpoint(tmp_path / "avg")
    assert loaded.manifest["metrics"] == {"bleu": 1.0}
    assert torch.allclose(loaded.model.output.weight, model.output.weight - 1.0, atol=1e-6)


def test_s2s_average_command(tmp_path, vocab, capsys):
    model = tiny_model(vocab=len(vocab), seed=1)
    paths = [str(_save(tmp_path / name, model, vocab)) for name in ("a", "b", "c")]
    assert main(["average", "--models", *paths, "--out", str(tmp_path / "avg")]) == 0
    assert "average of 3 checkpoints" in capsys.readouterr().out
    assert main(["average", "--models", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2


def test_trainer_exports_the_average_of_its_last_checkpoints(toy_data_dir, tmp_path):
    from s2s.trainer import Trainer

    cfg = toy_config(toy_data_dir, epochs=2, eval_every=2, batch_tokens=8000, max_minutes=0.0,
                     average_last=3, dev_sentences=20)
    summary = Trainer(cfg, tmp_path, show_progress=False).run()
    averaged = summary["averaged"]
    assert len(averaged["steps"]) == 3 and averaged["steps"][-1] == summary["steps"]
    assert "bleu" in averaged["metrics"]
    assert load_checkpoint(tmp_path / "averaged").manifest["metrics"] == averaged["metrics"]
    assert len(list((tmp_path / "recent").iterdir())) == 3
