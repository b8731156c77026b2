import json

import pytest
import torch

from s2s.checkpoint import (MANIFEST, WEIGHTS, CheckpointError, load_checkpoint,
                            load_trainer_state, read_manifest, save_checkpoint)
from s2s.config import ExperimentConfig, TokenizerConfig
from s2s.vocabulary import learn_vocabulary

from .conftest import random_batch, tiny_model, tiny_model_config


@pytest.fixture
def saved(tmp_path):
    vocab = learn_vocabulary(["a b c d e f g h i"] * 3, TokenizerConfig(type="word"))
    cfg = ExperimentConfig(name="tiny").replace(model=tiny_model_config())
    model = tiny_model(vocab=len(vocab))
    state = {"progress": {"step": 7}, "optimizer": {"lr": torch.tensor(0.1)}}
    path = save_checkpoint(tmp_path / "ckpt", model, vocab, vocab, cfg, {"bleu": 1.5}, state)
    return path, model, vocab


def test_round_trip_gives_identical_outputs(saved):
    path, model, vocab = saved
    loaded = load_checkpoint(path)
    src, lengths = random_batch(vocab=len(vocab))
    tgt = torch.randint(4, len(vocab), (4, 3))
    assert torch.allclose(model(src, lengths, tgt), loaded.model(src, lengths, tgt))
    assert loaded.src_vocab is loaded.tgt_vocab
    assert loaded.manifest["metrics"] == {"bleu": 1.5} and loaded.name == "tiny"
    assert load_trainer_state(path)["progress"]["step"] == 7


def test_saving_again_replaces_atomically(saved):
    path, model, vocab = saved
    save_checkpoint(path, model, vocab, vocab, ExperimentConfig(name="again").replace(
        model=tiny_model_config()))
    assert read_manifest(path)["name"] == "again"
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def test_missing_and_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="not an s2s checkpoint"):
        load_checkpoint(tmp_path)


def test_corrupt_weights(saved):
    path, _, _ = saved
    (path / WEIGHTS).write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="cannot load weights"):
        load_checkpoint(path)


def test_incompatible_config(saved):
    path, _, _ = saved
    text = (path / "config.yaml").read_text().replace("dec_hidden: 10", "dec_hidden: 11")
    (path / "config.yaml").write_text(text)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_future_format_version(saved):
    path, _, _ = saved
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["format_version"] = 99
    (path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(path)


def test_corrupt_manifest(saved):
    path, _, _ = saved
    (path / MANIFEST).write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt manifest"):
        load_checkpoint(path)
