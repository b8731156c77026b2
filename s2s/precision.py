"""Mixed precision on CUDA for training and decoding; on CPU everything stays fp32, untouched.

bf16 autocast where the GPU computes bf16 natively (Ampere and newer), fp16 otherwise. The
grad scaler is on for both: autocast runs cuDNN's fused LSTM in fp16 whatever dtype it was
asked for (ATen's cudnn/AutocastRNN.cpp casts input, states and weights to kHalf), so the
LSTM's gradients need loss scaling even when the rest of the model computes in bf16. Weights
and optimizer state stay fp32 (autocast casts per op), so checkpoints do not change.

Not yet run on a GPU: written against torch's documented AMP API and tested on CPU only.
"""
from __future__ import annotations

import contextlib
from typing import ContextManager

import torch


def autocast_dtype(device_type: str, bf16_native: bool) -> torch.dtype | None:
    """The autocast dtype for a device: None (fp32, autocast off) off CUDA."""
    if device_type != "cuda":
        return None
    return torch.bfloat16 if bf16_native else torch.float16


def device_autocast_dtype(device: torch.device | str) -> torch.dtype | None:
    device = torch.device(device)
    # including_emulation=False: pre-Ampere GPUs emulate bf16 slowly; they get fp16.
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
    return autocast_dtype(device.type, bf16)


def autocast(device: torch.device | str) -> ContextManager:
    """Autocast for `device`'s mixed precision; a null context on CPU."""
    dtype = device_autocast_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


class MixedPrecision:
    """What one training run needs: the autocast context and a grad scaler that lives as long
    as the run (its scale adapts over steps and is saved with the trainer state)."""

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.dtype = device_autocast_dtype(self.device)
        # Disabled on CPU: scale(), unscale_(), step() and update() are then exact no-ops.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype is not None)

    @property
    def name(self) -> str:
        return "fp32" if self.dtype is None else str(self.dtype).removeprefix("torch.")

    def autocast(self) -> ContextManager:
        return autocast(self.device)
