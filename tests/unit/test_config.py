"""The experiment config and the one config layer under every s2s config (s2s/settings.py):
messages that name the file, the key path and the allowed values; choices from registries;
old spellings and old checkpoints' config.yaml."""
import pickle
from pathlib import Path

import pytest
import yaml

from s2s import attention
from s2s.config import (ConfigError, DataConfig, ExperimentConfig, ModelConfig, TokenizerConfig,
                        TrainingConfig, from_dict, load_config)

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))

# config.yaml as the dataclass config (before the pydantic layer) wrote it: the old task
# spelling, no training corpus (a config built in code), every key written out.
OLD_CHECKPOINT_CONFIG = """\
name: old
data:
  train: ''
  dev: ''
  test: ''
  task: translate
  max_src_len: 100
  max_tgt_len: 100
  tokenizer: {type: bpe, vocab_size: 8000, shared: true, character_coverage: 1.0,
              train_sentences: 200000, byte_fallback: false, sampling_alpha: 0.0}
model: {rnn: lstm, emb_size: 256, enc_hidden: 256, enc_layers: 1, dec_hidden: 512, dec_layers: 1,
        attention: luong_general, input_feeding: false, dropout: 0.2, tied_embeddings: true,
        copy_attention: false, coverage: false}
training: {seed: 42, epochs: 10, max_minutes: 0.0, batch_tokens: 4000, lr: 0.001, warmup_steps: 200,
           lr_schedule: plateau, plateau_patience: 2, plateau_factor: 0.5, min_lr: 1.0e-05, clip_norm: 1.0,
           label_smoothing: 0.1, eval_every: 1000, log_every: 100, early_stopping: 6,
           dev_sentences: 400, threads: 0, device: auto, coverage_weight: 1.0, average_last: 0}
testing: {beam: 5, n_best: 1, length_penalty: 1.0, max_len_ratio: 1.5, max_len_offset: 10, batch_size: 64}
ray: {}
"""


def _write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_load(path):
    assert load_config(path).name


def test_unknown_key_is_named(tmp_path):
    bad = _write(tmp_path, "data:\n  train: x.tsv\nmodel:\n  hiden: 3\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown config key 'model.hiden' \(known: rnn, emb_size"):
        load_config(bad)


def test_unknown_top_level_key(tmp_path):
    bad = _write(tmp_path, "data:\n  train: x.tsv\ntrainig: {}\n")
    with pytest.raises(ConfigError, match="'trainig'"):
        load_config(bad)


@pytest.mark.parametrize("text, message", [
    ("training:\n  lr: -1\n", "training.lr must be a positive number, got -1"),
    ("training:\n  lr: 1e-3\n", r"training.lr must be a number, got '1e-3' \(YAML reads"),
    ("model:\n  dropout: 1.5\n", r"model.dropout must be a number >= 0.0 and < 1.0, got 1.5"),
    ("model:\n  enc_layers: 2.5\n", "model.enc_layers must be an integer, got 2.5"),
    ("model:\n  input_feeding: maybe\n", r"model.input_feeding must be a boolean \(true or false\), got 'maybe'"),
    ("training:\n  device: tpu\n", "training.device must be one of auto, cpu, cuda, got 'tpu'"),
    ("data:\n  tokenizer: 5\n", "data.tokenizer must be a mapping, got 5"),
    ("testing:\n  beam: 2\n  n_best: 3\n", r"testing.n_best must be at most testing.beam \(2\), got 3"),
    ("data:\n  tokenizer:\n    type: word\n    byte_fallback: true\n", "data.tokenizer.byte_fallback needs type bpe or unigram"),
    ("- a list\n", "the top level must be a mapping, got"),
    ("training:\n  lr_schedule: budget\n",
     r"training.lr_schedule: 'budget' decays the rate over max_minutes, which is 0 \(no budget\)"),
])
def test_messages_name_the_file_the_key_and_what_it_accepts(tmp_path, text, message):
    bad = _write(tmp_path, "name: x\n" + text if not text.startswith("-") else text)
    with pytest.raises(ConfigError, match=f"^{bad}: {message}"):
        load_config(bad)


def test_all_problems_are_counted_on_one_line(tmp_path):
    bad = _write(tmp_path, "training:\n  lr: -1\n  device: tpu\nmodel:\n  rnn: rnn\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert str(err.value).endswith("(and 2 more problems)") and "\n" not in str(err.value)


def test_choices_come_from_the_registries():
    with pytest.raises(ConfigError, match="model.attention must be one of bahdanau, luong_dot, luong_general, got"):
        from_dict(ExperimentConfig, {"data": {"train": "t"}, "model": {"attention": "cosine"}})
    with pytest.raises(ConfigError, match="model.rnn must be lstm or gru, got 'rnn'"):
        ModelConfig(rnn="rnn")
    with pytest.raises(ConfigError, match="data.tokenizer.type must be one of unigram, bpe, word, char"):
        TokenizerConfig(type="sentence")


def test_a_registered_attention_type_is_accepted_with_no_config_edit(monkeypatch):
    monkeypatch.setitem(attention.ATTENTION_TYPES, "cosine", attention.LuongGeneralAttention)
    assert ModelConfig(attention="cosine").attention == "cosine"


@pytest.mark.parametrize("old, new", [("translate", "translation"), ("summarize", "summarization")])
def test_old_task_spellings_read_as_the_new_ones(old, new):
    assert DataConfig(task=old).task == new
    with pytest.raises(ConfigError, match="data.task must be translation or summarization, got 'sort'"):
        DataConfig(task="sort")


def test_a_config_to_train_with_names_its_corpus(tmp_path):
    with pytest.raises(ConfigError, match=r"c.yaml: data.train is required"):
        load_config(_write(tmp_path, "name: x\n"))
    assert ExperimentConfig().data.train == ""  # built in code (or read from a checkpoint): allowed


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")
    broken = tmp_path / "b.yaml"
    broken.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match=r"b.yaml is not valid YAML: .* \(line 2, column 1\)$"):
        load_config(broken)


def test_empty_sections_and_non_string_keys(tmp_path):
    cfg = load_config(_write(tmp_path, "data:\n  train: t\ntraining:\nray:\n"))
    assert cfg.training == TrainingConfig() and cfg.ray == {}
    with pytest.raises(ConfigError, match="config keys must be strings, got 1"):
        load_config(_write(tmp_path, "data:\n  train: t\n  1: x\n"))


def test_nested_tokenizer_section_is_a_model():
    cfg = from_dict(ExperimentConfig, {"data": {"train": "t", "tokenizer": {"vocab_size": 99}}})
    assert cfg.data.tokenizer.vocab_size == 99


def test_a_config_built_in_code_raises_the_same_one_line_errors():
    with pytest.raises(ConfigError, match="^training.lr must be a positive number, got 0$"):
        TrainingConfig(lr=0)
    cfg = ExperimentConfig(name="x")
    with pytest.raises(ConfigError, match="model.copy_attention needs data.tokenizer.shared: true"):
        cfg.replace(data=DataConfig(tokenizer=TokenizerConfig(shared=False)),
                    model=ModelConfig(copy_attention=True))
    with pytest.raises(ValueError):  # frozen, as the dataclasses were
        cfg.name = "y"


def test_replace_validates_and_keeps_the_rest():
    cfg = from_dict(ExperimentConfig, {"name": "x", "data": {"train": "t"}})
    longer = cfg.replace(training=cfg.training.replace(epochs=2))
    assert (longer.training.epochs, longer.training.lr, longer.data.train) == (2, cfg.training.lr, "t")
    with pytest.raises(ConfigError, match="data.max_src_len must be a positive integer, got 0"):
        cfg.data.replace(max_src_len=0)


def test_an_old_checkpoints_config_yaml_loads_and_the_saved_yaml_round_trips(tmp_path):
    old = tmp_path / "config.yaml"
    old.write_text(OLD_CHECKPOINT_CONFIG)
    from s2s.settings import load

    cfg = load(ExperimentConfig, old)
    assert cfg.data.task == "translation" and cfg.name == "old"
    saved = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    assert from_dict(ExperimentConfig, yaml.safe_load(saved)) == cfg
    assert pickle.loads(pickle.dumps(cfg)) == cfg
