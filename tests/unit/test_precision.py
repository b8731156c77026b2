"""Mixed precision picks bf16/fp16 on CUDA only, and leaves the CPU step exactly as it was.

No GPU runs here: the CUDA choices are checked through the capability they depend on."""
import contextlib

import pytest
import torch
from torch import nn

from s2s.batching import collate
from s2s.config import TrainingConfig
from s2s.loss import sequence_loss
from s2s.precision import MixedPrecision, autocast, autocast_dtype, device_autocast_dtype
from s2s.training import LRSchedule, to_device, train_step

from .conftest import tiny_model


@pytest.mark.parametrize("device_type, bf16_native, expected", [
    ("cuda", True, torch.bfloat16), ("cuda", False, torch.float16),
    ("cpu", True, None), ("cpu", False, None), ("mps", True, None)])
def test_autocast_dtype_by_device_and_capability(device_type, bf16_native, expected):
    assert autocast_dtype(device_type, bf16_native) is expected


@pytest.mark.parametrize("native, expected", [(True, torch.bfloat16), (False, torch.float16)])
def test_a_gpu_without_native_bf16_gets_fp16(monkeypatch, native, expected):
    asked = {}

    def is_bf16_supported(including_emulation=True):
        asked["emulation"] = including_emulation
        return native

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert device_autocast_dtype("cuda:0") is expected
    assert asked == {"emulation": False}     # emulated bf16 is slow: not counted


def test_cpu_gets_no_autocast_and_a_disabled_scaler():
    precision = MixedPrecision("cpu")
    assert precision.dtype is None and precision.name == "fp32"
    assert not precision.scaler.is_enabled()
    assert isinstance(autocast("cpu"), contextlib.nullcontext)


def _old_fp32_step(model, batch, optimizer, schedule, cfg) -> float:
    """train_step as it was before mixed precision existed."""
    model.train()
    logits = model(batch.src, batch.src_len, batch.tgt_in)
    loss = sequence_loss(logits, batch.tgt_out, cfg.label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    (loss / batch.ntokens).backward()
    if cfg.clip_norm > 0:
        nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
    optimizer.step()
    schedule.step()
    return float(loss.detach())


def _train(step) -> tuple[list[float], list[torch.Tensor]]:
    cfg = TrainingConfig(lr=0.01, warmup_steps=2, clip_norm=0.5)
    model = tiny_model(vocab=13, seed=3, input_feeding=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    schedule = LRSchedule(optimizer, cfg)
    gen = torch.Generator().manual_seed(5)
    src = [torch.randint(4, 13, (int(n),), generator=gen).tolist() for n in range(2, 10)]
    tgt = [list(reversed(s)) for s in src]
    losses = [step(model, to_device(collate(src, tgt, range(8)), torch.device("cpu")),
                   optimizer, schedule, cfg) for _ in range(5)]
    return losses, [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("precision", [None, MixedPrecision("cpu")], ids=["default", "cpu"])
def test_cpu_training_is_bit_identical_to_the_fp32_step(precision):
    old_losses, old_params = _train(_old_fp32_step)
    losses, params = _train(lambda *args: train_step(*args, precision=precision))
    assert losses == old_losses
    assert all(torch.equal(a, b) for a, b in zip(params, old_params))
