"""Precision and memory format, chosen by measurement where it matters.

On a CPU with native bf16 (AVX-512 BF16 / AMX), bf16 autocast is 2-4x faster for ResNets at 224 px
but *slower* for transformers, ConvNeXt and 32 px CIFAR nets (benchmarks/model_throughput.py), so
``auto`` times a few training steps of the actual model and batch in fp32, bf16 and (for conv nets)
bf16 + channels_last, and keeps the fastest. The verdict is cached per model config, input shape,
thread count, CPU and torch version. On CUDA, ``auto`` is bf16 where supported (else fp16 with a
gradient scaler) with channels_last for conv nets.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_has_bf16() -> bool:
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None) or getattr(
        torch.cpu, "_is_amx_tile_supported", None
    )
    return bool(check and check())


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    dtype = DTYPES[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def is_conv_net(model: nn.Module) -> bool:
    """More than a patch-embedding conv: channels_last is worth trying."""
    return sum(isinstance(m, nn.Conv2d) for m in model.modules()) >= 3


def _cache_file() -> Path:
    return Path(os.environ.get("IMGCLS_CACHE") or Path.home() / ".cache" / "imgcls") / "precision.json"


def _timed_step(
    model: nn.Module, x: torch.Tensor, loss_fn: Callable, precision: str, device: torch.device
) -> float:
    times = []
    for _ in range(3):
        start = time.perf_counter()
        with autocast(device, precision):
            out = model(x)
        loss_fn(out).backward()
        model.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return min(times[1:])  # the first call warms up kernels and caches


def choose(
    model: nn.Module,
    x: torch.Tensor,
    loss_fn: Callable,
    device: torch.device,
    precision: str,
    channels_last: str,
    key: str,
) -> tuple[str, bool, dict[str, float]]:
    """(precision, channels_last, measured seconds per step) for the requested settings."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if channels_last not in ("auto", "on", "off"):
        raise ConfigError(f"channels_last must be auto, on or off, got {channels_last!r}")
    conv = is_conv_net(model)
    if device.type == "cuda":
        if precision == "auto":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return precision, (conv if channels_last == "auto" else channels_last == "on"), {}
    if precision == "fp16":
        raise ConfigError("fp16 is for GPUs; on a CPU use bf16 (or auto)")
    if precision == "bf16" and not cpu_has_bf16():
        raise ConfigError("this CPU has no native bf16 (AVX-512 BF16 / AMX); use fp32 or auto")
    if precision != "auto" and channels_last != "auto":
        return precision, channels_last == "on", {}
    candidates = [(p, cl) for p in (["fp32", "bf16"] if cpu_has_bf16() else ["fp32"]) for cl in (False, True)]
    candidates = [
        (p, cl)
        for p, cl in candidates
        if (precision in ("auto", p)) and (channels_last == "auto" or cl == (channels_last == "on"))
    ]
    candidates = [(p, cl) for p, cl in candidates if conv or not cl]
    if len(candidates) == 1:
        return candidates[0][0], candidates[0][1], {}
    cache_key = hashlib.sha256(
        json.dumps(
            [key, list(x.shape), torch.get_num_threads(), platform.processor(), torch.__version__, candidates]
        ).encode()
    ).hexdigest()[:24]
    cache = _cache_file()
    known = json.loads(cache.read_text()) if cache.is_file() else {}
    if cache_key in known:
        verdict = known[cache_key]
        return verdict["precision"], verdict["channels_last"], verdict["seconds"]
    trial = copy.deepcopy(model).to(device).train()
    seconds: dict[str, float] = {}
    for p, cl in candidates:
        trial = trial.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
        xin = x.to(device, memory_format=torch.channels_last if cl else torch.contiguous_format)
        seconds[f"{p}{'+channels_last' if cl else ''}"] = _timed_step(trial, xin, loss_fn, p, device)
    best = min(seconds, key=seconds.get)
    verdict = {
        "precision": best.split("+")[0],
        "channels_last": best.endswith("channels_last"),
        "seconds": seconds,
    }
    known[cache_key] = verdict
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(known, indent=1))
    os.replace(tmp, cache)
    return verdict["precision"], verdict["channels_last"], seconds


class ModelEMA:
    """Exponential moving average of the weights (buffers copied), for evaluation and saving."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_p = [p for p in self.module.parameters()]
        torch._foreach_lerp_(ema_p, [p.detach() for p in model.parameters()], 1 - self.decay)
        for e, b in zip(self.module.buffers(), model.buffers()):
            e.copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)
