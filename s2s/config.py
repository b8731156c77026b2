"""Experiment configuration: one sectioned YAML (data, model, training, testing, ray).

Each section is a frozen pydantic model (s2s/settings.py); an unknown key anywhere is an error
that names the key, so a typo never silently falls back to a default. Choices come from the
registries they choose from: `model.rnn` from encoders.RNN_TYPES, `model.attention` from
attention.ATTENTION_TYPES, `data.tokenizer.type` from vocabulary.MODEL_TYPES, `data.task` from
tasks.TASKS (the old spellings `translate`/`summarize` read as the new ones).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveInt, model_validator

from .attention import ATTENTION_TYPES
from .encoders import RNN_TYPES
from .settings import ConfigError, ConfigModel, build, conflict, invalid, load, one_of
from .tasks import Task
from .vocabulary import MODEL_TYPES, SUBWORD_TYPES

__all__ = ["ConfigError", "DataConfig", "ExperimentConfig", "ModelConfig", "TestingConfig",
           "TokenizerConfig", "TrainingConfig", "from_dict", "load_config"]

Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]   # a probability that leaves something


class TokenizerConfig(ConfigModel):
    section: ClassVar[str] = "data.tokenizer"

    type: Annotated[str, one_of(MODEL_TYPES)] = "bpe"  # sentencepiece model type
    vocab_size: Annotated[int, Field(ge=8)] = 8000     # per side (or shared); a soft limit for small corpora
    shared: bool = True        # one vocabulary for source and target
    character_coverage: float = 1.0
    train_sentences: int = 200000  # sentences sampled to learn the subwords
    # Pieces outside the vocabulary are spelled as UTF-8 byte pieces instead of unk, so
    # copy attention can reproduce any source text (needs vocab_size > 260).
    byte_fallback: bool = False
    # Subword regularization on the training side (Kudo 2018; BPE-dropout for bpe): each
    # batch is re-segmented by sampling; unigram: smoothing alpha (0.1-0.3), bpe: dropout
    # probability (~0.1). Inference always uses the one best segmentation. 0 = off.
    sampling_alpha: Fraction = 0.0

    @model_validator(mode="after")
    def subword_options_need_a_subword_model(self) -> "TokenizerConfig":
        subword = " or ".join(SUBWORD_TYPES)
        if self.sampling_alpha and self.type not in SUBWORD_TYPES:
            raise invalid(f"needs type {subword}, got type {self.type!r}", key="sampling_alpha")
        if self.byte_fallback and (self.type not in SUBWORD_TYPES or self.vocab_size <= 260):
            raise invalid(f"needs type {subword} and vocab_size > 260, got type {self.type!r} and "
                          f"vocab_size {self.vocab_size}", key="byte_fallback")
        return self


class DataConfig(ConfigModel):
    section: ClassVar[str] = "data"

    train: str = ""            # corpus file: .parquet / .tsv / .jsonl with src, tgt columns
    dev: str = ""
    test: str = ""
    task: Task = "translation"  # s2s/tasks.py: translation (BLEU/chrF) | summarization (ROUGE)
    max_src_len: PositiveInt = 100  # subword tokens; longer inputs are truncated
    max_tgt_len: PositiveInt = 100
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)


class ModelConfig(ConfigModel):
    section: ClassVar[str] = "model"

    rnn: Annotated[str, one_of(RNN_TYPES)] = "lstm"                     # lstm | gru
    emb_size: PositiveInt = 256
    enc_hidden: PositiveInt = 256     # per direction (the encoder is bidirectional)
    enc_layers: PositiveInt = 1
    dec_hidden: PositiveInt = 512
    dec_layers: PositiveInt = 1
    attention: Annotated[str, one_of(ATTENTION_TYPES)] = "luong_general"  # bahdanau | luong_dot | luong_general
    input_feeding: bool = False       # False lets training run the decoder over all steps at once
    dropout: Fraction = 0.2
    tied_embeddings: bool = True      # output layer shares the target embedding matrix
    copy_attention: bool = False      # pointer-generator: mix generating with copying source tokens
    coverage: bool = False            # running sum of attention enters the scores (See et al. 2017)


class TrainingConfig(ConfigModel):
    section: ClassVar[str] = "training"

    seed: int = 42
    epochs: int = 10
    max_minutes: float = 0.0   # wall-clock budget; 0 = no limit
    batch_tokens: PositiveInt = 4000  # target tokens per batch (padding included)
    lr: Annotated[float, Field(gt=0.0)] = 0.001
    warmup_steps: int = 200    # linear warm-up of the learning rate
    # After warm-up: "plateau" decays by plateau_factor when dev stops improving; "budget" decays
    # linearly to min_lr as max_minutes runs out (the best shape for a fixed budget: Li et al.
    # 2020, "Budgeted Training"), and ignores the plateau settings.
    lr_schedule: Literal["plateau", "budget"] = "plateau"
    plateau_patience: int = 2  # evaluations without dev improvement before the LR decays
    plateau_factor: float = 0.5
    min_lr: float = 1.0e-5
    clip_norm: float = 1.0
    label_smoothing: Fraction = 0.1
    eval_every: int = 1000     # steps between dev evaluations (and one at each epoch end)
    log_every: int = 100       # steps between progress lines when stderr is not a terminal
    early_stopping: int = 6    # evaluations without improvement before stopping; 0 = never
    dev_sentences: int = 400   # dev sentences decoded (greedy) at each evaluation
    threads: int = 0           # torch intra-op threads; 0 = all cores
    device: Literal["auto", "cpu", "cuda"] = "auto"
    coverage_weight: NonNegativeFloat = 1.0  # weight of the coverage loss (with model.coverage)
    average_last: NonNegativeInt = 0  # at the end, write OUT/averaged: mean of the last N saved checkpoints

    @model_validator(mode="after")
    def a_budget_schedule_needs_a_budget(self) -> "TrainingConfig":
        if self.lr_schedule == "budget" and self.max_minutes <= 0:
            raise conflict("'budget' decays the rate over max_minutes, which is 0 (no budget)",
                           key="lr_schedule")
        return self


class TestingConfig(ConfigModel):
    section: ClassVar[str] = "testing"

    beam: PositiveInt = 5
    n_best: PositiveInt = 1
    length_penalty: float = 1.0   # GNMT alpha; 0 = raw log-probability
    max_len_ratio: float = 1.5    # hypotheses stop at ratio * source length + offset
    max_len_offset: int = 10
    batch_size: int = 64

    @model_validator(mode="after")
    def n_best_fits_the_beam(self) -> "TestingConfig":
        if self.n_best > self.beam:
            raise invalid(f"must be at most testing.beam ({self.beam}), got {self.n_best}", key="n_best")
        return self


class ExperimentConfig(ConfigModel):
    name: str = "s2s"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    testing: TestingConfig = Field(default_factory=TestingConfig)
    # Ray Train options (workers, checkpoint_every, ...): kept as written here and
    # validated by the Ray adapter (s2s/train/config.py), so the core stays Ray-free.
    ray: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def copying_needs_one_vocabulary(self) -> "ExperimentConfig":
        # Copying puts source ids into the output distribution: both sides need the same ids.
        if self.model.copy_attention and not self.data.tokenizer.shared:
            raise invalid("needs data.tokenizer.shared: true (copied source ids must be target ids)",
                          key="model.copy_attention")
        return self

    def validate(self, source: str | Path | None = None) -> "ExperimentConfig":
        """What building cannot check: a config to train or evaluate with names its training
        corpus (a checkpoint's config, or one built in code, need not)."""
        if not self.data.train:
            prefix = f"{source}: " if source else ""
            raise ConfigError(f"{prefix}data.train is required: the training corpus (.parquet, .tsv or .jsonl)")
        return self


def from_dict(cls: type[ConfigModel], values: dict[str, Any] | None, where: str = "") -> Any:
    """Model `cls` from a mapping; `where` ("ray.") prefixes the key paths in messages."""
    return build(cls, values, where.rstrip(".") or None)


def load_config(path: str | Path) -> ExperimentConfig:
    return load(ExperimentConfig, path).validate(path)
