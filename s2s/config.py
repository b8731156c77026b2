"""Experiment configuration: one sectioned YAML (data, model, training, testing).

Each section loads into a frozen dataclass; an unknown key anywhere is an error
that names the key, so a typo never silently falls back to a default.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .tasks import TASKS


class ConfigError(ValueError):
    """A config file that cannot be used as written."""


@dataclass(frozen=True)
class TokenizerConfig:
    type: str = "bpe"          # sentencepiece model type: bpe | unigram | word | char
    vocab_size: int = 8000     # per side (or shared); a soft limit for small corpora
    shared: bool = True        # one vocabulary for source and target
    character_coverage: float = 1.0
    train_sentences: int = 200000  # sentences sampled to learn the subwords
    # Pieces outside the vocabulary are spelled as UTF-8 byte pieces instead of unk, so
    # copy attention can reproduce any source text (needs vocab_size > 260).
    byte_fallback: bool = False
    # Subword regularization on the training side (Kudo 2018; BPE-dropout for bpe): each
    # batch is re-segmented by sampling; unigram: smoothing alpha (0.1-0.3), bpe: dropout
    # probability (~0.1). Inference always uses the one best segmentation. 0 = off.
    sampling_alpha: float = 0.0

    def validate(self) -> None:
        _check(self.type in ("bpe", "unigram", "word", "char"), "data.tokenizer.type", self.type)
        _check(self.vocab_size >= 8, "data.tokenizer.vocab_size", self.vocab_size)
        _check(0.0 <= self.sampling_alpha < 1.0, "data.tokenizer.sampling_alpha", self.sampling_alpha)
        _check(self.sampling_alpha == 0 or self.type in ("bpe", "unigram"),
               "data.tokenizer.sampling_alpha (bpe and unigram only)", self.sampling_alpha)
        _check(not self.byte_fallback or (self.type in ("bpe", "unigram") and self.vocab_size > 260),
               "data.tokenizer.byte_fallback (bpe/unigram with vocab_size > 260)", self.byte_fallback)


@dataclass(frozen=True)
class DataConfig:
    train: str = ""            # corpus file: .parquet / .tsv / .jsonl with src, tgt columns
    dev: str = ""
    test: str = ""
    task: str = "translation"  # s2s/tasks.py: translation (BLEU/chrF) | summarization (ROUGE)
    max_src_len: int = 100     # subword tokens; longer inputs are truncated
    max_tgt_len: int = 100
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)

    def validate(self) -> None:
        _check(self.task in TASKS, f"data.task (one of {', '.join(TASKS)})", self.task)
        _check(bool(self.train), "data.train", "(empty)")
        _check(self.max_src_len > 0 and self.max_tgt_len > 0, "data.max_*_len", "<= 0")
        self.tokenizer.validate()


@dataclass(frozen=True)
class ModelConfig:
    rnn: str = "lstm"          # lstm | gru
    emb_size: int = 256
    enc_hidden: int = 256      # per direction (the encoder is bidirectional)
    enc_layers: int = 1
    dec_hidden: int = 512
    dec_layers: int = 1
    attention: str = "luong_general"  # bahdanau | luong_dot | luong_general
    input_feeding: bool = False       # False lets training run the decoder over all steps at once
    dropout: float = 0.2
    tied_embeddings: bool = True      # output layer shares the target embedding matrix
    copy_attention: bool = False      # pointer-generator: mix generating with copying source tokens
    coverage: bool = False            # running sum of attention enters the scores (See et al. 2017)

    def validate(self) -> None:
        _check(self.rnn in ("lstm", "gru"), "model.rnn", self.rnn)
        _check(self.attention in ("bahdanau", "luong_dot", "luong_general"), "model.attention",
               self.attention)
        _check(0.0 <= self.dropout < 1.0, "model.dropout", self.dropout)
        for name in ("emb_size", "enc_hidden", "enc_layers", "dec_hidden", "dec_layers"):
            _check(getattr(self, name) > 0, f"model.{name}", getattr(self, name))


@dataclass(frozen=True)
class TrainingConfig:
    seed: int = 42
    epochs: int = 10
    max_minutes: float = 0.0   # wall-clock budget; 0 = no limit
    batch_tokens: int = 4000   # target tokens per batch (padding included)
    lr: float = 0.001
    warmup_steps: int = 200    # linear warm-up of the learning rate
    plateau_patience: int = 2  # evaluations without dev improvement before the LR decays
    plateau_factor: float = 0.5
    min_lr: float = 1.0e-5
    clip_norm: float = 1.0
    label_smoothing: float = 0.1
    eval_every: int = 1000     # steps between dev evaluations (and one at each epoch end)
    log_every: int = 100       # steps between progress lines when stderr is not a terminal
    early_stopping: int = 6    # evaluations without improvement before stopping; 0 = never
    dev_sentences: int = 400   # dev sentences decoded (greedy) at each evaluation
    threads: int = 0           # torch intra-op threads; 0 = all cores
    device: str = "auto"       # auto | cpu | cuda
    coverage_weight: float = 1.0  # weight of the coverage loss (with model.coverage)
    average_last: int = 0      # at the end, write OUT/averaged: mean of the last N saved checkpoints

    def validate(self) -> None:
        _check(self.batch_tokens > 0, "training.batch_tokens", self.batch_tokens)
        _check(self.coverage_weight >= 0, "training.coverage_weight", self.coverage_weight)
        _check(self.average_last >= 0, "training.average_last", self.average_last)
        _check(self.lr > 0, "training.lr", self.lr)
        _check(0.0 <= self.label_smoothing < 1.0, "training.label_smoothing", self.label_smoothing)
        _check(self.device in ("auto", "cpu", "cuda"), "training.device", self.device)


@dataclass(frozen=True)
class TestingConfig:
    beam: int = 5
    n_best: int = 1
    length_penalty: float = 1.0   # GNMT alpha; 0 = raw log-probability
    max_len_ratio: float = 1.5    # hypotheses stop at ratio * source length + offset
    max_len_offset: int = 10
    batch_size: int = 64

    def validate(self) -> None:
        _check(self.beam >= 1, "testing.beam", self.beam)
        _check(1 <= self.n_best <= self.beam, "testing.n_best", self.n_best)


@dataclass(frozen=True)
class ExperimentConfig:
    name: str = "s2s"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    testing: TestingConfig = field(default_factory=TestingConfig)
    # Ray Train options (workers, checkpoint_every, ...): kept as written here and
    # validated by the Ray adapter (s2s/train/config.py), so the core stays Ray-free.
    ray: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> "ExperimentConfig":
        for section in (self.data, self.model, self.training, self.testing):
            section.validate()
        # Copying puts source ids into the output distribution: both sides need the same ids.
        _check(not self.model.copy_attention or self.data.tokenizer.shared,
               "model.copy_attention (needs data.tokenizer.shared: true)", True)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **sections: Any) -> "ExperimentConfig":
        return dataclasses.replace(self, **sections)


def _check(ok: bool, key: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"invalid value for {key}: {value!r}")


def from_dict(cls: type, values: dict[str, Any] | None, where: str = "") -> Any:
    """Build dataclass `cls` from a mapping, recursing into nested dataclasses."""
    values = values or {}
    if not isinstance(values, dict):
        raise ConfigError(f"section {where or 'top level'} must be a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config key '{where}{unknown[0]}' (known: {', '.join(fields)})")
    kwargs = {}
    for name, value in values.items():
        ftype = fields[name].type
        nested = _NESTED.get(ftype)
        kwargs[name] = from_dict(nested, value, f"{where}{name}.") if nested else value
    return cls(**kwargs)


def read_yaml(path: str | Path, error: type[Exception] = ConfigError) -> Any:
    """Parse a YAML file; a missing or malformed file raises `error` naming the path."""
    path = Path(path)
    if not path.is_file():
        raise error(f"config file not found: {path}")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise error(f"config file {path} is not valid YAML: {err}") from err


def load_config(path: str | Path) -> ExperimentConfig:
    return from_dict(ExperimentConfig, read_yaml(path)).validate()


_NESTED = {
    "TokenizerConfig": TokenizerConfig,
    "DataConfig": DataConfig,
    "ModelConfig": ModelConfig,
    "TrainingConfig": TrainingConfig,
    "TestingConfig": TestingConfig,
}
