"""int8 decoding on CPU: dynamic quantization of a trained model's recurrent and linear layers.

    s2s quantize --model runs/bible-en-fr/best --out runs/bible-en-fr/int8

Dynamic quantization stores the weights of every LSTM/GRU and nn.Linear (bridge, attention
projections, combine, output layer) in int8 and quantizes their inputs on the fly, per call;
embeddings, softmax and search stay fp32. It needs no calibration data.

Why torch.ao.quantization.quantize_dynamic, although torch marks torch.ao.quantization as
deprecated in favour of torchao: torchao's `quantize_` rewrites the weights of nn.Linear
modules only, while the LSTMs (most of a decode step) run in ATen's fused RNN kernel, for which
only quantize_dynamic has an int8 form (DynamicQuantizedLSTM on the fbgemm/x86 kernels).

What a quantized checkpoint holds (see checkpoint.py): the fp32 weights, unchanged, in
model.safetensors, and `"quantization": "int8"` in the manifest; the loader quantizes on load.
A quantized module's packed weights are opaque, engine-specific objects that safetensors cannot
hold and that torch.save would pickle, so this keeps the one safe format. Quantizing is
deterministic (per-tensor min/max of fixed weights), so every load gives the same int8 model,
the same one a Serve route with `quantize: int8` builds from the fp32 checkpoint. The price:
the directory is as large as the fp32 one.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

INT8 = "int8"
QUANTIZATIONS = (INT8,)
QUANTIZED_MODULES = {nn.LSTM, nn.GRU, nn.Linear}


def check_quantization(value: str | None, key: str = "quantize") -> str | None:
    """None (fp32) or "int8"; anything else is refused, naming `key`."""
    if value is not None and value not in QUANTIZATIONS:
        raise ValueError(f"{key} must be one of {', '.join(QUANTIZATIONS)} (or unset for fp32), "
                         f"got {value!r}")
    return value


def quantize_model(model: nn.Module) -> nn.Module:
    """The int8 CPU form of an fp32 model, for inference only (the fp32 model is consumed)."""
    model = model.to("cpu").eval()
    with warnings.catch_warnings():
        # torch 2.15 warns on every call that torch.ao.quantization and quantized tensor dtypes
        # are deprecated; the module docstring says why this is still the path for LSTMs.
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor.*deprecated")
        return torch.ao.quantization.quantize_dynamic(model, QUANTIZED_MODULES, dtype=torch.qint8,
                                                      inplace=True)


def is_quantized(model: nn.Module) -> bool:
    """True when some layer of `model` runs int8 kernels."""
    return any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in model.modules())
