"""The one checkpoint format: a directory read by every part of s2s.

    s2s_checkpoint.json   manifest: format version, name, version, vocab sizes, metrics,
                          and "quantization": "int8" for a model that decodes in int8
    config.yaml           the full experiment config the model was trained with
    src.spm / tgt.spm     SentencePiece models (one file, vocab.spm, when shared)
    model.safetensors     weights (no pickle)
    trainer_state.pt      optional: optimizer/scheduler/RNG/data position for resuming,
                          loaded with torch.load(weights_only=True)

An int8 checkpoint (`s2s quantize`) keeps fp32 weights and is quantized on load: see
quantization.py for why.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from .config import ConfigError, ExperimentConfig
from .model import Seq2Seq, build_model
from .quantization import INT8, QUANTIZATIONS, check_quantization, quantize_model
from .settings import load
from .vocabulary import Vocabulary

FORMAT_VERSION = 1
MANIFEST = "s2s_checkpoint.json"
WEIGHTS = "model.safetensors"
TRAINER_STATE = "trainer_state.pt"


class CheckpointError(RuntimeError):
    """A checkpoint directory that cannot be loaded (missing, corrupt, incompatible)."""


@dataclass
class LoadedModel:
    model: Seq2Seq
    src_vocab: Vocabulary
    tgt_vocab: Vocabulary
    config: ExperimentConfig
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return self.manifest.get("name", "s2s")

    @property
    def quantization(self) -> str | None:
        return self.manifest.get("quantization")

    @property
    def version(self) -> str:
        """The trained model's version; "-int8" marks its quantized form (however it was made)."""
        version = str(self.manifest.get("version", ""))
        return f"{version}-{self.quantization}" if self.quantization else version


def _vocab_files(shared: bool) -> tuple[str, str]:
    return ("vocab.spm", "vocab.spm") if shared else ("src.spm", "tgt.spm")


def save_checkpoint(out_dir: str | Path, model: Seq2Seq, src_vocab: Vocabulary,
                    tgt_vocab: Vocabulary, config: ExperimentConfig,
                    metrics: dict[str, float] | None = None,
                    trainer_state: dict[str, Any] | None = None,
                    manifest_extra: dict[str, Any] | None = None) -> Path:
    """Write the directory atomically: readers never see a half-written checkpoint.
    `manifest_extra` adds (or overrides) manifest fields."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    shared = src_vocab is tgt_vocab
    src_file, tgt_file = _vocab_files(shared)
    src_vocab.save(tmp / src_file)
    tgt_vocab.save(tmp / tgt_file)
    save_model(model, str(tmp / WEIGHTS))
    (tmp / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    if trainer_state is not None:
        torch.save(trainer_state, tmp / TRAINER_STATE)
    manifest = {"format_version": FORMAT_VERSION, "name": config.name,
                "version": time.strftime("%Y%m%dT%H%M%S"), "task": config.data.task,
                "shared_vocab": shared, "src_vocab_size": len(src_vocab),
                "tgt_vocab_size": len(tgt_vocab), "metrics": metrics or {}, **(manifest_extra or {})}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    _replace_dir(tmp, out_dir)
    return out_dir


def _replace_dir(tmp: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old.{os.getpid()}")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint directory not found: {path}")
    manifest_file = path / MANIFEST
    if not manifest_file.is_file():
        raise CheckpointError(f"{path} is not an s2s checkpoint (no {MANIFEST})")
    try:
        manifest = json.loads(manifest_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"corrupt manifest {manifest_file}: {err}") from err
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format version "
                              f"{manifest.get('format_version')!r}; this s2s reads {FORMAT_VERSION}")
    if manifest.get("quantization") not in (None, *QUANTIZATIONS):
        raise CheckpointError(f"checkpoint {path} is quantized as {manifest['quantization']!r}; "
                              f"this s2s decodes fp32 or {', '.join(QUANTIZATIONS)}")
    return manifest


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu",
                    quantize: str | None = None) -> LoadedModel:
    """The model in eval mode on `device`; int8 (CPU only) when the manifest says so or
    `quantize` asks for it."""
    path = Path(path)
    manifest = read_manifest(path)
    quantization = check_quantization(quantize) or manifest.get("quantization")
    if quantization and torch.device(device).type != "cpu":
        raise CheckpointError(f"{quantization} models decode on CPU only; asked for device {device} "
                              f"(use --device cpu, or the fp32 checkpoint on a GPU)")
    try:
        config = load(ExperimentConfig, path / "config.yaml")  # old `task: translate` reads as translation
        src_file, tgt_file = _vocab_files(manifest["shared_vocab"])
        src_vocab = Vocabulary.load(path / src_file)
        tgt_vocab = src_vocab if manifest["shared_vocab"] else Vocabulary.load(path / tgt_file)
    except (OSError, KeyError, ConfigError, RuntimeError) as err:
        raise CheckpointError(f"incomplete or corrupt checkpoint {path}: {err}") from err
    model = build_model(config.model, len(src_vocab), len(tgt_vocab), manifest["shared_vocab"])
    try:
        missing, unexpected = load_model(model, str(path / WEIGHTS), strict=False,
                                         device=str(device))
    except (OSError, SafetensorError, RuntimeError, ValueError) as err:
        raise CheckpointError(f"cannot load weights from {path / WEIGHTS}: {err}") from err
    if missing or unexpected:
        raise CheckpointError(f"weights in {path} do not match the model config "
                              f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
    model.to(device).eval()
    if quantization:
        model = quantize_model(model)
        manifest = {**manifest, "quantization": quantization}
    return LoadedModel(model, src_vocab, tgt_vocab, config, manifest)


def quantize_checkpoint(path: str | Path, out_dir: str | Path) -> Path:
    """`s2s quantize`: the checkpoint at `path`, marked int8 in a new directory (without the
    trainer state: an int8 model is for decoding, not for resuming training)."""
    if Path(out_dir).resolve() == Path(path).resolve():
        raise CheckpointError("--out must differ from --model: the fp32 checkpoint is kept")
    loaded = load_checkpoint(path, "cpu")
    if loaded.quantization:
        raise CheckpointError(f"{path} is already quantized ({loaded.quantization})")
    source = loaded.manifest
    return save_checkpoint(out_dir, loaded.model, loaded.src_vocab, loaded.tgt_vocab, loaded.config,
                           source.get("metrics"),
                           manifest_extra={"version": source.get("version", ""), "quantization": INT8,
                                           "quantized_from": str(Path(path).resolve())})


def load_trainer_state(path: str | Path) -> dict[str, Any] | None:
    state_file = Path(path) / TRAINER_STATE
    if not state_file.is_file():
        return None
    try:
        return torch.load(state_file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # weights_only met a global that is not tensor data
        culprit = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        raise CheckpointError(f"{state_file} holds more than tensors and plain containers "
                              f"({culprit.group(1) if culprit else 'an unknown object'}); refusing to unpickle "
                              "it: checkpoints are only loaded with torch.load(weights_only=True)") from None
    except (RuntimeError, EOFError) as err:
        raise CheckpointError(f"cannot read {state_file}: {err}") from err
