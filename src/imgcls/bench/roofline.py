"""The machine's roofline for the table: the GFLOP/s a large square matmul reaches in fp32 and in
bf16 (what a model's convolutions and linear layers can hope for at best)."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from .timing import time_calls


def processor_name(device: torch.device) -> str:
    """What computed the figures: the GPU's name, or the CPU's model name and its native bf16 units
    (``avx512_bf16``, ``amx_bf16``) from /proc/cpuinfo — a roofline is only as good as its label."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    flags = set(next((line for line in lines if line.startswith("flags")), "").split())
    units = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return f"{name or platform.machine()} ({', '.join(units) or 'no native bf16'})"


def matmul_gflops(dtype: torch.dtype, device: torch.device, n: int = 2048) -> float:
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    t = time_calls(lambda: a @ b, warmup=2, min_repeats=5, min_time=1.0, sync=sync)
    return 2 * n**3 / t.median_s / 1e9


def roofline(device: torch.device) -> dict[str, float]:
    """{"fp32": GFLOP/s, "bf16": GFLOP/s} (bf16 only where the device computes it natively)."""
    from ..amp import cpu_has_bf16

    out = {"fp32": matmul_gflops(torch.float32, device)}
    if device.type == "cuda" or cpu_has_bf16():
        out["bf16"] = matmul_gflops(torch.bfloat16, device)
    return out
