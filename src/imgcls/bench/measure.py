"""One model measured in its own fresh process (so that its peak memory is its own and no model
warms the caches of the next): inference at batch N and batch 1, a training step at batch N, in our
defaults (``--precision auto``: bf16 autocast where the device computes bf16 natively, channels_last
for conv nets; for inference, batch norms folded into their convs; freed memory kept for reuse) and,
with ``compare_eager``, in plain fp32 contiguous eager PyTorch beside it, in a process of its own."""

from __future__ import annotations

import multiprocessing
import resource
import tempfile
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ConfigError

MODES = ("infer", "train", "both")
BACKENDS = ("torch", "onnx", "compile")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class BenchSpec:
    img_size: int | None = None  # None: each model's own input size
    batch_size: int = 32
    precision: str = "auto"
    mode: str = "both"
    backend: str = "torch"
    compare_eager: bool = False
    threads: int = 0  # 0: the library's default (one per core)
    device: str = "cpu"
    min_time: float = 2.0  # seconds of timed calls per measurement, at least
    repeats: int = 5  # timed calls per measurement, at least (after 2 warm-up calls)

    def check(self) -> None:
        for value, allowed, what in ((self.mode, MODES, "--mode"), (self.backend, BACKENDS, "--backend"),
                                     (self.precision, PRECISIONS, "--precision")):  # fmt: skip
            if value not in allowed:
                raise ConfigError(f"{what} {value!r}: one of {', '.join(allowed)}")
        if self.backend == "onnx" and self.mode != "infer":
            raise ConfigError("--backend onnx measures inference only: add --mode infer")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")


def bench_models(names: list[str], spec: BenchSpec, progress: bool = True) -> list[dict[str, Any]]:
    """A row per model (timm's column names; see ``table.py``). Our defaults are measured in a new
    process per model, and plain eager (``compare_eager``) in another, so that neither warms the caches
    of the other and eager runs with PyTorch's own allocator behaviour (see ``imgcls.memory``)."""
    from ..progress import track

    spec.check()
    rows = []
    context = multiprocessing.get_context("spawn")
    variants = ("ours", "eager") if spec.compare_eager else ("ours",)
    for name in track(names, "benchmarking", disable=not progress or len(names) < 2, unit="model"):
        measured = {}
        for variant in variants:
            with ProcessPoolExecutor(1, mp_context=context) as pool:
                measured[variant] = pool.submit(measure_one, name, asdict(spec), variant).result()
        rows.append(with_eager(measured["ours"], measured.get("eager")))
    return rows


def with_eager(ours: dict[str, Any], eager: dict[str, Any] | None) -> dict[str, Any]:
    """Our row with the eager measurement's ``eager_`` columns and the speed-up of each mode beside it."""
    row = dict(ours)
    if eager is None:
        return row
    row.update({k: v for k, v in eager.items() if k.startswith("eager_")})
    for mode in ("infer", "train"):
        if f"eager_{mode}_samples_per_sec" in eager and f"{mode}_samples_per_sec" in row:
            row[f"{mode}_speedup"] = round(
                row[f"{mode}_samples_per_sec"] / eager[f"eager_{mode}_samples_per_sec"], 2
            )
    return row


def candidates_for(model: Any, precision: str, backend: str, device: Any) -> list[tuple[str, bool]]:
    """(autocast precision, channels_last) to measure. ``auto`` is what imgcls does by default: where the
    device computes bf16 natively, bf16 autocast (channels_last for conv nets) and plain fp32 are both
    measured and the faster is kept, as ``imgcls train --precision auto`` does; onnxruntime runs fp32."""
    from ..amp import cpu_has_bf16
    from ..engine.precision import is_conv_net

    bf16 = ("bf16", is_conv_net(model))
    if backend == "onnx" or precision == "fp32":
        return [("fp32", False)]
    if precision == "bf16":
        return [bf16]
    return [bf16, ("fp32", False)] if device.type == "cuda" or cpu_has_bf16() else [("fp32", False)]


def measure_one(name: str, spec_dict: dict[str, Any], variant: str = "ours") -> dict[str, Any]:
    """One model's row: ``ours`` measures our defaults (freed memory kept, the precision candidates,
    folded norms), ``eager`` plain fp32 contiguous PyTorch (its columns prefixed ``eager_``)."""
    import torch

    from ..analysis.complexity import count_flops
    from ..analysis.zoo_table import describe_models
    from ..memory import keep_freed_memory
    from ..transfer import create_model
    from .roofline import processor_name

    spec = BenchSpec(**spec_dict)
    if variant == "ours":
        keep_freed_memory()
    if spec.threads:
        torch.set_num_threads(spec.threads)
    device = torch.device(spec.device)
    described = describe_models(name)[0]
    size = spec.img_size or described["input_size"][-1]
    model = create_model(name).to(device)
    chans = described["input_size"][0]
    if size == described["input_size"][-1]:
        flops = described["gflops"] * 1e9
    else:
        flops = count_flops(create_model(name, device="meta"), (1, chans, size, size))
    row: dict[str, Any] = {
        "model": name, "param_count": round(described["params"] / 1e6, 2), "infer_gmacs": round(flops / 2e9, 3),
        "gflops": round(flops / 1e9, 3), "infer_img_size": size, "train_img_size": size,
        "infer_batch_size": spec.batch_size, "train_batch_size": spec.batch_size, "backend": spec.backend,
        "threads": torch.get_num_threads(), "device": str(device), "processor": processor_name(device),
    }  # fmt: skip
    modes = ("infer", "train") if spec.mode == "both" else (spec.mode,)
    for mode in modes:
        if variant == "eager":
            eager = _measure(
                model, mode, spec, "fp32", False, "torch", chans, size, flops, device, "", fold=False
            )
            row.update({f"eager_{k}": v for k, v in eager.items()})
            continue
        candidates = candidates_for(model, spec.precision, spec.backend, device)
        measured = {c: _measure(model, mode, spec, c[0], c[1], spec.backend, chans, size, flops, device, "",
                                fold=True) for c in candidates}  # fmt: skip
        best = max(measured, key=lambda c: measured[c][f"{mode}_samples_per_sec"])
        row.update(measured[best])
        row[f"{mode}_precision"] = best[0] + (" + channels_last" if best[1] else "")
    row["peak_memory_mb"] = round(_peak_mb(device), 1)
    return row


def _measure(model: Any, mode: str, spec: BenchSpec, precision: str, cl: bool, backend: str, chans: int,
             size: int, flops: float, device: Any, prefix: str, fold: bool) -> dict[str, Any]:  # fmt: skip
    import copy

    import torch

    from ..amp import autocast
    from ..models.fold_bn import fold_batch_norms
    from .timing import time_calls

    out: dict[str, Any] = {}
    if mode == "infer" and fold and backend == "torch":  # on a copy: the training measurement needs the norms
        model = copy.deepcopy(model).eval()
        out[f"{prefix}infer_folded_norms"] = fold_batch_norms(model)
    fmt = torch.channels_last if cl else torch.contiguous_format
    model = model.to(memory_format=fmt)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def inputs(batch: int) -> torch.Tensor:
        return torch.randn(batch, chans, size, size, device=device).contiguous(memory_format=fmt)

    if mode == "infer":
        model.eval()
        run = _inference_runner(model, backend, precision, device, chans, size)
        for batch, key in ((spec.batch_size, f"{prefix}infer"), (1, f"{prefix}infer_b1")):
            x = inputs(batch)
            t = time_calls(lambda x=x: run(x), min_repeats=spec.repeats, min_time=spec.min_time, sync=sync)
            if key.endswith("_b1"):
                out[f"{key}_latency_ms"] = round(t.median_s * 1e3, 3)
            else:
                out[f"{key}_samples_per_sec"] = round(batch / t.median_s, 2)
                out[f"{key}_step_time"] = round(t.median_s * 1e3, 3)
                out[f"{key}_step_spread"] = round(t.spread, 3)
                out[f"{key}_gflops_per_sec"] = round(flops * batch / t.median_s / 1e9, 1)
        return out
    model.train()
    net = torch.compile(model) if backend == "compile" else model
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    x = inputs(spec.batch_size)
    y = torch.randint(0, getattr(model, "num_classes", 1000), (spec.batch_size,), device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(device, precision):
            logits = net(x)
            logits = logits[0] if isinstance(logits, tuple) else logits
            loss = torch.nn.functional.cross_entropy(logits.float(), y)
        loss.backward()
        opt.step()

    t = time_calls(step, min_repeats=spec.repeats, min_time=spec.min_time, sync=sync)
    out[f"{prefix}train_samples_per_sec"] = round(spec.batch_size / t.median_s, 2)
    out[f"{prefix}train_step_time"] = round(t.median_s * 1e3, 3)
    out[f"{prefix}train_step_spread"] = round(t.spread, 3)
    out[f"{prefix}train_gflops_per_sec"] = round(
        3 * flops * spec.batch_size / t.median_s / 1e9, 1
    )  # fwd + 2x bwd
    return out


def _inference_runner(model: Any, backend: str, precision: str, device: Any, chans: int, size: int) -> Any:
    import torch

    from ..amp import autocast

    if backend == "onnx":  # exported and checked as imgcls export does, then run by onnxruntime
        from pathlib import Path

        from ..export import Exportable, export_module, file_runner

        path = Path(tempfile.mkdtemp(prefix="imgcls-bench-")) / "model.onnx"
        module = Exportable(model.float().to(memory_format=torch.contiguous_format), logits=True).eval()
        export_module(module, torch.randn(2, chans, size, size), "onnx", path, dynamic_batch=True)
        return file_runner("onnx", path)
    net = model
    if backend == "compile":
        import torch._inductor.config as inductor

        inductor.freezing = True  # constant-folds the weights: what makes compiled inference faster on a CPU
        net = torch.compile(model)

    def run(x: torch.Tensor) -> Any:
        with torch.inference_mode(), autocast(device, precision) if precision != "fp32" else nullcontext():
            return net(x)

    return run


def _peak_mb(device: Any) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
