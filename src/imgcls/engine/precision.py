"""Precision and memory format, chosen by measurement where it matters.

On a CPU with native bf16 (AVX-512 BF16 / AMX), bf16 autocast is 2-4x faster for ResNets at 224 px
but *slower* for transformers, ConvNeXt and 32 px CIFAR nets (benchmarks/model_throughput.py), so
``auto`` times whole training steps (forward, backward, optimiser step) of the actual model and
batch in each candidate — fp32, bf16 where the CPU computes it natively, and for conv nets each with
channels_last — in interleaved rounds, until one candidate is ahead of every other by ``MARGIN`` on
the median, or the candidates are within it of each other after ``MAX_ROUNDS`` (then the fastest
median wins, and the verdict says they were close).

The trial serves a run, so it costs at most ``SHARE`` of that run's estimated length (its steps
times the measured step time; ``TRIAL_CAP_S`` at most; ``TRIAL_BUDGET_S`` for a run of unknown
length): a long run of big steps (airbench94 at batch 2,000: 4-7 s a step) pays for the trial that
may save it a third of its steps' time, and a run too short to pay for even the minimum trial is not
measured at all, and keeps the first candidate (fp32, the memory format the
model has). Nothing is measured where the answer is known — a precision and memory format named, a
single candidate (fp32 on a CPU without bf16, for a net that is not a conv net) — or cached: the
verdict is kept per model config, input shape, thread count, CPU model and torch version. On CUDA,
``auto`` is bf16 where supported (else fp16 with a gradient scaler) with channels_last for conv nets.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..amp import PRECISIONS, autocast, cpu_has_bf16
from ..errors import ConfigError
from .distributed import Dist

MARGIN = 0.05  # a winner must be this much faster (median step time) than every other candidate
MIN_ROUNDS, MAX_ROUNDS = 3, 12  # timed steps per candidate
TRIAL_BUDGET_S = 20.0  # a run of unknown length: stop adding rounds after this much timing
TRIAL_CAP_S = 120.0  # a run of known length: SHARE of it, and never more than this
SHARE = 0.05  # the trial's cost, warm-ups included, at most this share of the run's estimated length


def is_conv_net(model: nn.Module) -> bool:
    """More than a patch-embedding conv: channels_last is worth trying."""
    return sum(isinstance(m, nn.Conv2d) for m in model.modules()) >= 3


def _cache_file() -> Path:
    return Path(os.environ.get("IMGCLS_CACHE") or Path.home() / ".cache" / "imgcls") / "precision.json"


def cpu_model() -> str:
    """The CPU's model name (``platform.processor()`` is empty on most Linux systems)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def label(precision: str, channels_last: bool) -> str:
    return f"{precision}{'+channels_last' if channels_last else ''}"


@dataclass
class Verdict:
    """What ``choose`` decided, and the evidence: median seconds per training step of each candidate."""

    precision: str
    channels_last: bool
    seconds: dict[str, float] = field(default_factory=dict)  # candidate label -> median step time
    rounds: int = 0  # timed steps per candidate (0: nothing was measured)
    clear: bool = True  # False: the candidates were within MARGIN of each other
    cached: bool = False
    unmeasured: str = ""  # why a choice was left unmeasured (the run too short to pay for a trial)

    def describe(self) -> str:
        if self.unmeasured:
            return f"{label(self.precision, self.channels_last)} (not measured: {self.unmeasured})"
        if not self.seconds:
            return label(self.precision, self.channels_last)
        best = self.seconds[label(self.precision, self.channels_last)]
        others = ", ".join(f"{k} {v / best:.2f}x" for k, v in self.seconds.items() if v != best)
        how = "cached verdict" if self.cached else f"{self.rounds} timed steps each"
        close = "" if self.clear else "; within a few % of each other"
        return (
            f"{label(self.precision, self.channels_last)} ({how}; step time of the others: {others}{close})"
        )


def step_seconds(
    trial: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, loss_fn: Callable, precision: str,
    device: torch.device,
) -> float:  # fmt: skip
    """Wall time of one whole training step of ``trial`` on ``x``: forward, backward, optimiser step."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    with autocast(device, precision):
        out = trial(x)
    loss_fn(out).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def measure(
    model: nn.Module, x: torch.Tensor, loss_fn: Callable, device: torch.device,
    candidates: list[tuple[str, bool]], run_steps: int | None = None, dist: Dist | None = None,
    run_seconds: float | None = None,
) -> tuple[dict[str, float], int, bool]:  # fmt: skip
    """(median seconds per candidate, rounds, clear winner) from interleaved rounds of whole steps;
    rounds 0 when the trial would have cost more than ``SHARE`` of a run of ``run_steps`` steps or
    ``run_seconds`` seconds (the seconds are then the warm-ups measured before it stopped). Under several processes every rank
    times at once (the contention training will have) and each step's time is averaged over the
    ranks, so all of them take the same decisions."""
    trial = copy.deepcopy(model).to(device).train()
    params = [p for p in trial.parameters() if p.requires_grad] or [nn.Parameter(torch.zeros(1))]
    opt = torch.optim.SGD(params, lr=0.0)  # a real step's work that changes nothing
    inputs = {}
    for p, cl in candidates:
        inputs[(p, cl)] = x.to(device, memory_format=torch.channels_last if cl else torch.contiguous_format)
    times: dict[tuple[str, bool], list[float]] = {c: [] for c in candidates}

    def run(cs: list[tuple[str, bool]]) -> list[float]:
        out = []
        for c in cs:
            trial.to(memory_format=torch.channels_last if c[1] else torch.contiguous_format)
            out.append(step_seconds(trial, opt, inputs[c], loss_fn, c[0], device))
        if dist is not None and dist.enabled:
            out = [t / dist.world for t in dist.sum(out)]
        return out

    def allowance(step_s: float) -> float:  # seconds the trial may cost, given a step's time
        bounds = [SHARE * run_steps * step_s] if run_steps is not None else []
        bounds += [SHARE * run_seconds] if run_seconds is not None else []
        return min([*bounds, TRIAL_CAP_S]) if bounds else TRIAL_BUDGET_S

    spent, warm = 0.0, {}
    for c in candidates:  # warm-up: kernels chosen, caches and allocator filled
        (warm[c],) = run([c])
        spent += warm[c]
        if spent > allowance(min(warm.values())):  # a warm-up costs at least a step: already too long
            return {label(*k): v for k, v in warm.items()}, 0, False
    if spent + MIN_ROUNDS * sum(warm.values()) > allowance(
        min(warm.values())
    ):  # a step costs at most its warm-up
        return {label(*k): v for k, v in warm.items()}, 0, False
    rounds, clear = 0, False
    while rounds < MAX_ROUNDS:
        order = candidates[rounds % len(candidates) :] + candidates[: rounds % len(candidates)]
        measured = run(order)  # rotated each round, so no candidate always follows the same one
        for c, t in zip(order, measured):
            times[c].append(t)
            spent += t
        rounds += 1
        if rounds < MIN_ROUNDS:
            continue
        medians = sorted(statistics.median(v) for v in times.values())
        clear = len(medians) < 2 or medians[1] >= medians[0] * (1 + MARGIN)
        if clear or spent + sum(measured) > allowance(medians[0]):  # another round would pass the allowance
            break
    return {label(*c): statistics.median(v) for c, v in times.items()}, rounds, clear


def choose(
    model: nn.Module,
    x: torch.Tensor,
    loss_fn: Callable,
    device: torch.device,
    precision: str,
    channels_last: str,
    key: str,
    dist: Dist | None = None,
    run_steps: int | None = None,
    run_seconds: float | None = None,
) -> Verdict:
    """The precision and memory format for the requested settings (``auto``: measured, cached), for a
    run of ``run_steps`` training steps or ``run_seconds`` seconds (neither: of unknown length; the
    trial is then bounded by ``TRIAL_BUDGET_S`` alone). With several processes, rank 0's cache decides whether to measure,
    and the verdict is the same on all."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if channels_last not in ("auto", "on", "off"):
        raise ConfigError(f"channels_last must be auto, on or off, got {channels_last!r}")
    conv = is_conv_net(model)
    if precision == "bf16-if-native" and device.type != "cuda":
        native = cpu_has_bf16()
        why = "the recipe's bf16-if-native: this CPU " + (
            "computes bf16 natively" if native else "has no native bf16"
        )
        cl = conv if channels_last == "auto" else channels_last == "on"
        return Verdict("bf16" if native else "fp32", cl, unmeasured=why)
    if device.type == "cuda":
        if precision in ("auto", "bf16-if-native"):
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return Verdict(precision, conv if channels_last == "auto" else channels_last == "on")
    if precision == "fp16":
        raise ConfigError("fp16 is for GPUs; on a CPU use bf16 (or auto)")
    if precision == "bf16" and not cpu_has_bf16():
        raise ConfigError("this CPU has no native bf16 (AVX-512 BF16 / AMX); use fp32 or auto")
    if precision != "auto" and channels_last != "auto":
        return Verdict(precision, channels_last == "on")
    candidates = [(p, cl) for p in (["fp32", "bf16"] if cpu_has_bf16() else ["fp32"]) for cl in (False, True)]
    candidates = [
        (p, cl)
        for p, cl in candidates
        if (precision in ("auto", p)) and (channels_last == "auto" or cl == (channels_last == "on"))
    ]
    candidates = [(p, cl) for p, cl in candidates if conv or not cl]
    if len(candidates) == 1:
        return Verdict(*candidates[0])
    cache_key = hashlib.sha256(
        json.dumps(
            [
                key,
                list(x.shape),
                torch.get_num_threads(),
                dist.world if dist is not None else 1,
                cpu_model(),
                torch.__version__,
                candidates,
                3,
            ]
        ).encode()
    ).hexdigest()[:24]
    main = dist is None or dist.is_main
    cache = _cache_file()
    known: dict = {}
    if main:
        try:
            known = json.loads(cache.read_text()) if cache.is_file() else {}
        except ValueError:  # a damaged cache is measured again, not trusted
            known = {}
    cached = known.get(cache_key)
    if dist is not None:
        cached = dist.broadcast(cached)
    if cached is not None:
        return Verdict(**{**cached, "cached": True})
    least = len(candidates) * (1 + MIN_ROUNDS)  # steps the shortest trial takes
    if run_steps is not None and run_steps * SHARE < least:
        return Verdict(*candidates[0], unmeasured=f"{len(candidates)} candidates take {least} trial steps, more "
                       f"than {SHARE:.0%} of this {run_steps}-step run; name --precision / --channels-last to choose")  # fmt: skip
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        # dropout in the trial must not move the global RNG: a measured and a cached verdict
        # then give the same training run
        seconds, rounds, clear = measure(model, x, loss_fn, device, candidates, run_steps, dist, run_seconds)
    if not rounds:
        if run_steps is not None or run_seconds is not None:
            length = f"{run_steps}-step" if run_steps is not None else f"{run_seconds:.0f}-second"
            why = f"the trial would cost more than {SHARE:.0%} of this {length} run"
        else:
            why = f"the trial would take more than {TRIAL_BUDGET_S:.0f} s, and this run's length is not known"
        return Verdict(*candidates[0], seconds, unmeasured=f"a step takes {min(seconds.values()):.2g} s: {why}; "
                       "name --precision / --channels-last to choose")  # fmt: skip
    best = min(seconds, key=seconds.__getitem__)
    verdict = Verdict(best.split("+")[0], best.endswith("channels_last"), seconds, rounds, clear)
    if main:
        known[cache_key] = {k: v for k, v in asdict(verdict).items() if k != "cached"}
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(known, indent=1))
        os.replace(tmp, cache)
    return verdict


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
