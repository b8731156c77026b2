"""Fixtures for the core's unit tests: tiny configs and models with fixed seeds."""
from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

from s2s.config import ModelConfig
from s2s.model import build_model


def tiny_model_config(**overrides) -> ModelConfig:
    base = ModelConfig(emb_size=8, enc_hidden=6, dec_hidden=10, enc_layers=1, dec_layers=1,
                       attention="luong_general", input_feeding=False, dropout=0.0,
                       tied_embeddings=True)
    return base.replace(**overrides)


def tiny_model(vocab: int = 13, seed: int = 0, **overrides):
    model = build_model(tiny_model_config(**overrides), vocab, vocab, True, seed)
    return model.eval()


def random_batch(batch: int = 4, src_len: int = 7, vocab: int = 13, seed: int = 0):
    """Sources of varied length, padded with 0; every row ends in eos (3)."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, src_len + 1, (batch,), generator=gen)
    lengths[0] = src_len
    src = torch.zeros(batch, src_len, dtype=torch.long)
    for row, n in enumerate(lengths.tolist()):
        src[row, : n - 1] = torch.randint(4, vocab, (n - 1,), generator=gen)
        src[row, n - 1] = 3
    return src, lengths


@pytest.fixture
def seeded():
    torch.manual_seed(0)


def toy_serve_file(tmp_path: Path) -> Path:
    """A copy of cluster/serve/toy.yaml, the Serve config file `s2s serve` reads."""
    repo = Path(__file__).resolve().parents[2]
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(yaml.safe_load((repo / "cluster" / "serve" / "toy.yaml").read_text())))
    return path


@pytest.fixture
def fake_serve_runtime(monkeypatch) -> Iterator[dict[str, list]]:
    """Ray and Serve as `s2s serve` calls them, recorded instead of run: {call: [its arguments]}.

    The fake ray.init installs a SIGTERM handler that exits, as the real one does in a driver's
    main thread; the handler from before is back afterwards."""
    import ray
    from ray import serve

    import s2s.stream.app as app_module

    calls: dict[str, list] = {"ray.init": [], "serve.start": [], "serve.run": [], "serve.delete": [], "shutdown": []}

    def init(**kwargs) -> None:
        calls["ray.init"].append(kwargs)
        signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(signum))

    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: calls["shutdown"].append("ray"))
    monkeypatch.setattr(serve, "start", lambda **kw: calls["serve.start"].append(kw))
    monkeypatch.setattr(serve, "run", lambda app, **kw: calls["serve.run"].append(kw))
    monkeypatch.setattr(serve, "delete", calls["serve.delete"].append)
    monkeypatch.setattr(serve, "shutdown", lambda: calls["shutdown"].append("serve"))
    monkeypatch.setattr(app_module, "build_app", lambda config: "app")
    yield calls
    signal.signal(signal.SIGTERM, previous)
