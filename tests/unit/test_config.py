from pathlib import Path

import pytest

from s2s.config import ConfigError, ExperimentConfig, from_dict, load_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_load(path):
    assert load_config(path).name


def test_unknown_key_is_named(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("data:\n  train: x.tsv\nmodel:\n  hiden: 3\n")
    with pytest.raises(ConfigError, match="'model.hiden'"):
        load_config(bad)


def test_unknown_top_level_key(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("data:\n  train: x.tsv\ntrainig: {}\n")
    with pytest.raises(ConfigError, match="'trainig'"):
        load_config(bad)


def test_bad_values_are_rejected():
    cfg = from_dict(ExperimentConfig, {"data": {"train": "t"}, "model": {"attention": "cosine"}})
    with pytest.raises(ConfigError, match="model.attention"):
        cfg.validate()


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")
    broken = tmp_path / "b.yaml"
    broken.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)


def test_nested_tokenizer_section_is_a_dataclass():
    cfg = from_dict(ExperimentConfig, {"data": {"train": "t", "tokenizer": {"vocab_size": 99}}})
    assert cfg.data.tokenizer.vocab_size == 99
