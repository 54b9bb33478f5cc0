"""Mixed precision by name: ``autocast(device, "bf16")`` and whether this CPU computes bf16 natively
(the ground floor: training, feature extraction, benchmarks and the server all use it)."""

from __future__ import annotations

import contextlib

import torch

from .errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "bf16-if-native")
# bf16-if-native: what a recipe names when it knows its net trains faster in bf16 wherever bf16 is
# native (airbench94 at batch 2,000: 2x on an AVX-512 BF16 EPYC) and still runs elsewhere: bf16 there,
# fp32 on a CPU without it, bf16 (or fp16) on a GPU; never measured
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
INFER_PRECISIONS = ("fp32", "bf16-if-native")  # what a run's test pass, imgcls eval and predict run in


def cpu_has_bf16() -> bool:
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None) or getattr(
        torch.cpu, "_is_amx_tile_supported", None
    )
    return bool(check and check())


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: a CPU with AVX-512 BF16 or AMX, a GPU with bf16."""
    return torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_bf16()


def infer_precision(name: str, device: torch.device) -> str:
    """The autocast precision of inference named ``name`` (``INFER_PRECISIONS``) on ``device``:
    bf16-if-native is bf16 where the device computes it natively, fp32 elsewhere."""
    if name not in INFER_PRECISIONS:
        raise ConfigError(f"an inference precision is one of {', '.join(INFER_PRECISIONS)}, got {name!r}")
    return "bf16" if name == "bf16-if-native" and native_bf16(device) else "fp32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """torch.autocast to the precision's dtype, or nothing for fp32."""
    dtype = DTYPES[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
