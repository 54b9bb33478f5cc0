"""Optimisers: SGD (momentum, Nesterov), AdamW, RMSprop, and Muon for the hidden layers' weights with
SGD for the rest; parameter groups without weight decay on norms and biases (or with it, at a rate
that does not follow their faster learning rate); a faster head; layer-wise LR decay; SAM and Lookahead
as wrappers around any of them; airbench's Lookahead-EMA, which also averages the batch-norm statistics
and so acts on the model, not the optimiser."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..config import above, at_least, opt, share
from ..errors import ConfigError
from ..models.base import Classifier

OPTIMIZERS = ("sgd", "adamw", "rmsprop", "muon")
BIAS_LR_ON = ("biases", "norms")
NORMS = nn.modules.batchnorm._NormBase | nn.LayerNorm | nn.GroupNorm


@dataclass
class OptimConfig:
    optimizer: str = opt(
        "adamw",
        "sgd | adamw | rmsprop | muon (Muon on the hidden layers' weights at muon_lr, SGD with momentum on the "
        "biases, norms and head at lr)",
    )
    lr: float = opt(
        5e-3,
        "peak learning rate, not scaled with the batch size (5e-3 suits AdamW on small nets from scratch; large nets want ~1e-3 with warm-up)",
        valid=at_least(0),
    )
    weight_decay: float = opt(0.05, "decoupled (AdamW) or L2 (SGD, RMSprop) weight decay", valid=at_least(0))
    momentum: float = opt(0.9, "SGD / RMSprop momentum", valid=share(high_open=True))
    nesterov: bool = opt(False, "Nesterov momentum (SGD)")
    betas: tuple[float, float] = opt((0.9, 0.999), "AdamW betas", valid=share(high_open=True))
    eps: float = opt(1e-8, "AdamW / RMSprop epsilon", valid=above(0))
    decay_norm_bias: bool = opt(
        False,
        "also apply weight decay to norm weights and biases (usually off; airbench: on). Their decay per step "
        "is lr x weight_decay like every other parameter's: bias_lr_scale speeds up their rate, not their decay",
    )
    bias_lr_scale: float = opt(
        1.0,
        "learning-rate factor of the biases and norm parameters (airbench: 64; bias_lr_on says which)",
        valid=above(0),
    )
    bias_lr_on: str = opt(
        "biases",
        "which parameters bias_lr_scale speeds up: biases (every bias and norm parameter) | norms "
        "(the norm layers' only: airbench's, whose whitening bias trains at the base rate)",
    )
    head_lr_scale: float = opt(
        1.0,
        "learning-rate factor of the head (the classifier); its decay is divided by it, as bias_lr_scale's "
        "(airbench94_muon: 0.67 / 0.053)",
        valid=above(0),
    )
    muon_lr: float = opt(
        0.02,
        "muon: the rate of the hidden layers' weights, whose updates are orthogonalised (their size does not "
        "follow the loss's scale); follows the schedule like lr (airbench94_muon: 0.24)",
        valid=above(0),
    )
    muon_momentum: float = opt(
        0.95,
        "muon: the hidden layers' momentum, Nesterov's with nesterov (airbench94_muon: 0.6)",
        valid=share(high_open=True),
    )
    muon_ns_steps: int = opt(
        5,
        "muon: Newton-Schulz iterations that orthogonalise each update (airbench94_muon: 3)",
        valid=at_least(1),
    )
    muon_renorm: bool = opt(
        False,
        "muon: before each step, scale every hidden weight back to norm sqrt(its output channels) "
        "(airbench94_muon); their scale is then fixed, so they get no weight decay",
    )
    layer_decay: float = opt(
        1.0,
        "layer-wise LR decay: each block closer to the input gets this factor (1 = off)",
        valid=share(low_open=True),
    )
    sam: float = opt(
        0.0,
        "SAM neighbourhood size rho (0 = off; Foret et al. use 0.05); doubles the step cost",
        valid=at_least(0),
    )
    lookahead: int = opt(
        0,
        "Lookahead: sync slow weights every k steps (0 = off; Zhang et al. use 5)",
        valid=at_least(0),
    )
    lookahead_alpha: float = opt(0.5, "Lookahead slow-weight step size", valid=share(low_open=True))
    lookahead_ema: int = opt(
        0,
        "airbench's Lookahead-EMA: every this many steps the weights and batch-norm statistics move into an "
        "average whose decay rises over the run, 0.95^k x (step/total)^3, and the last step ends on it (0 = off; "
        "airbench: 5)",
        valid=at_least(0),
    )
    clip_grad: float = opt(0.0, "clip the gradient norm to this (0 = off)", valid=at_least(0))
    accum_steps: int = opt(
        1, "gradient accumulation: optimiser steps every this many batches", valid=at_least(1)
    )


def _is_no_decay(name: str, p: nn.Parameter, module: nn.Module, declared: set[str]) -> bool:
    """Biases, norm weights and what the model declares (position embeddings...) get no decay."""
    return p.ndim <= 1 or isinstance(module, NORMS) or name in declared


def layer_ids(model: nn.Module) -> tuple[dict[str, int], int]:
    """{parameter name: layer group} and the head's index, from the model's own ``layer_groups()``
    (stem 0, blocks in forward order, head last); a plain module (a probe's linear layer) is one group."""
    if isinstance(model, Classifier):
        return model.group_ids()
    return {name: 0 for name, _ in model.named_parameters()}, 0


def held_from(net: nn.Module, epochs: int) -> dict[str, int]:
    """{parameter: the epoch from which the model holds it} for those that train at first and stop later
    (airbench's whitening bias); the schedule may end their rate there (``end_at_hold``)."""
    if not isinstance(net, Classifier):
        return {}
    first = set(net.held_parameters(0))
    found: dict[str, int] = {}
    for epoch in range(1, epochs):
        for name in set(net.held_parameters(epoch)) - first - found.keys():
            found[name] = epoch
    return found


def param_groups(
    model: nn.Module, cfg: OptimConfig, held_from: dict[str, int] | None = None
) -> list[dict[str, Any]]:
    """The optimiser's groups: by optimiser (Muon's hidden weights or not), weight decay (on or off), speed
    (bias_lr_scale, head_lr_scale or neither), layer (layer_decay) and the epoch a parameter stops training
    (``held_from``: name -> epoch; the schedule may end there). A fast group's decay coefficient is divided
    by its rate's factor, so that every decayed parameter loses lr x weight_decay of itself per step
    (airbench's decoupling). Muon's groups carry their rate as ``lr_scale = muon_lr / lr``."""
    if cfg.bias_lr_on not in BIAS_LR_ON:
        raise ConfigError(f"bias_lr_on must be one of {', '.join(BIAS_LR_ON)}, got {cfg.bias_lr_on!r}")
    muon = cfg.optimizer == "muon"
    modules = dict(model.named_modules())
    need_ids = cfg.layer_decay != 1.0 or cfg.head_lr_scale != 1.0 or muon
    ids, last = layer_ids(model) if need_ids else ({}, -1)
    declared = model.no_weight_decay() if isinstance(model, Classifier) else set()
    held_from = held_from or {}
    groups: dict[tuple[bool, bool, bool, bool, int, int], dict[str, Any]] = defaultdict(
        lambda: {"params": [], "names": []}
    )
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        owner = modules.get(name.rsplit(".", 1)[0] if "." in name else "", model)
        plain = _is_no_decay(name, p, owner, declared)  # a bias, a norm's parameter or declared
        layer = ids.get(name, 0)
        head = layer == last
        hidden = muon and not plain and not head and p.ndim >= 2
        decay = (cfg.decay_norm_bias or not plain) and not (hidden and cfg.muon_renorm)
        fast = plain if cfg.bias_lr_on == "biases" else isinstance(owner, NORMS)
        speed = (cfg.bias_lr_scale if fast else 1.0) * (cfg.head_lr_scale if head else 1.0)
        until = held_from.get(name, 0)
        g = groups[(hidden, decay, fast, head, layer, until)]
        g["params"].append(p)
        g["names"].append(name)
        g["weight_decay"] = cfg.weight_decay / speed if decay else 0.0
        layer_scale = cfg.layer_decay ** (last - layer) if cfg.layer_decay != 1.0 else 1.0
        g["lr_scale"] = layer_scale * speed * (cfg.muon_lr / cfg.lr if hidden and cfg.lr else 1.0)
        g["muon"] = hidden
        if until:
            g["held_from"] = until
    return [groups[k] for k in sorted(groups)]


def build_optimizer(
    model: nn.Module, cfg: OptimConfig, held_from: dict[str, int] | None = None
) -> torch.optim.Optimizer:
    if cfg.optimizer not in OPTIMIZERS:
        raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {cfg.optimizer!r}")
    groups = param_groups(model, cfg, held_from)
    for g in groups:
        g["lr"] = cfg.lr * g["lr_scale"]
        g.pop("names")
    if cfg.optimizer == "muon":
        base: torch.optim.Optimizer = MuonWithSGD(groups, cfg)
    elif cfg.optimizer == "sgd":
        base: torch.optim.Optimizer = torch.optim.SGD(
            groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov
        )
    elif cfg.optimizer == "adamw":
        base = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
    else:
        base = torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum, eps=cfg.eps, alpha=0.9)
    if cfg.lookahead and cfg.lookahead_ema:
        raise ConfigError(
            "lookahead (Zhang et al.'s) and lookahead_ema (airbench's) exclude each other: set one to 0"
        )
    if cfg.lookahead:
        base = Lookahead(base, cfg.lookahead, cfg.lookahead_alpha)
    if cfg.sam:
        base = SAM(base, cfg.sam)
    return base


class _Wrapper(torch.optim.Optimizer):
    """Sees through to the wrapped optimiser's param_groups and state, so schedulers and clipping act on
    it. They are looked up on each access, not copied: ``load_state_dict`` gives the wrapped optimiser
    new group dicts, and a copy would leave the scheduler setting rates nobody reads after a resume."""

    def __init__(self, base: torch.optim.Optimizer) -> None:
        self.base = base
        self.defaults = base.defaults
        self._optimizer_step_pre_hooks = {}
        self._optimizer_step_post_hooks = {}

    @property  # type: ignore[override]
    def param_groups(self) -> list[dict[str, Any]]:
        return self.base.param_groups

    @param_groups.setter
    def param_groups(self, groups: list[dict[str, Any]]) -> None:
        self.base.param_groups = groups

    @property  # type: ignore[override]
    def state(self) -> Any:
        return self.base.state

    @state.setter
    def state(self, state: Any) -> None:
        self.base.state = state

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base.zero_grad(set_to_none)


def _rows(t: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """A weight (out, in, kh, kw ...) or its gradient as the matrix Muon orthogonalises: a row per output
    channel, its columns in the order of the weight's memory — (in, kh, kw), or (kh, kw, in) for a
    channels_last weight: orthogonalisation does not see the order, and so the weight's matrix is a view
    of its memory (the gradient's, a view where its memory allows)."""
    if t.ndim == 2:
        return t
    if t.ndim == 4 and weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous():
        return t.permute(0, 2, 3, 1).reshape(t.shape[0], -1)
    return t.reshape(t.shape[0], -1)


class MuonWithSGD(torch.optim.Optimizer):
    """Muon (Jordan et al. 2024; ``torch.optim.Muon``) on the groups marked ``muon`` — the hidden layers'
    weights: momentum, then each update orthogonalised by Newton-Schulz iterations — and SGD with momentum
    on the rest (biases, norms, the head). torch's Muon takes matrices only: each conv filter bank
    (out, in, kh, kw) reaches it as a matrix that shares the filters' memory (``_rows``), its gradient
    likewise, refreshed every step. With ``muon_renorm`` every hidden weight is first scaled back to norm
    sqrt(out) (airbench94_muon). ``param_groups`` are the real parameters' groups (the scheduler, clipping,
    the gradient scaler and the wrappers act on them); checkpoints hold both parts' state."""

    def __init__(self, groups: list[dict[str, Any]], cfg: OptimConfig) -> None:
        hidden = [g for g in groups if g["muon"]]
        rest = [g for g in groups if not g["muon"]]
        self.renorm = cfg.muon_renorm
        self.sgd = (
            torch.optim.SGD(rest, momentum=cfg.momentum, nesterov=cfg.nesterov, lr=cfg.lr) if rest else None
        )
        self.hidden = hidden
        self.muon = None
        if hidden:
            views = [{**g, "params": [_rows(p.detach(), p) for p in g["params"]]} for g in hidden]
            self.muon = torch.optim.Muon(views, lr=cfg.muon_lr, weight_decay=0.0, momentum=cfg.muon_momentum,
                                         nesterov=cfg.nesterov, ns_steps=cfg.muon_ns_steps)  # fmt: skip
        self.defaults = {"lr": cfg.lr}
        self._optimizer_step_pre_hooks = {}
        self._optimizer_step_post_hooks = {}

    @property  # type: ignore[override]
    def param_groups(self) -> list[dict[str, Any]]:
        return [*self.hidden, *(self.sgd.param_groups if self.sgd else [])]

    @param_groups.setter
    def param_groups(self, groups: list[dict[str, Any]]) -> None:
        raise AttributeError("MuonWithSGD's groups are its parts'; load_state_dict restores them")

    @property  # type: ignore[override]
    def state(self) -> dict[Any, Any]:
        """Read-only: each real parameter's state in the part that steps it."""
        state = dict(self.sgd.state) if self.sgd else {}
        if self.muon:
            for g, v in zip(self.hidden, self.muon.param_groups):
                state.update(
                    {p: self.muon.state[m] for p, m in zip(g["params"], v["params"]) if m in self.muon.state}
                )
        return state

    def zero_grad(self, set_to_none: bool = True) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is not None:
                    p.grad = None if set_to_none else p.grad.zero_()

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self.muon:
            for g, v in zip(self.hidden, self.muon.param_groups):
                v["lr"] = g["lr"]
                for p, m in zip(g["params"], v["params"]):
                    if p.grad is None:
                        m.grad = None
                        continue
                    if self.renorm:
                        p.mul_(p.shape[0] ** 0.5 / p.norm())
                    if m.data_ptr() != p.data_ptr():  # the weight moved (a device, a layout): follow it
                        m.data = _rows(p.detach(), p)
                    m.grad = _rows(p.grad, p)
            self.muon.step()
            for v in self.muon.param_groups:
                for m in v["params"]:
                    m.grad = None
        if self.sgd:
            self.sgd.step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {
            "sgd": self.sgd.state_dict() if self.sgd else None,
            "muon": self.muon.state_dict() if self.muon else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.sgd:
            self.sgd.load_state_dict(state["sgd"])
        if self.muon:
            self.muon.load_state_dict(state["muon"])
            for g, v in zip(self.hidden, self.muon.param_groups):
                g["lr"] = v["lr"]


class Lookahead(_Wrapper):
    """Zhang et al. (2019): the wrapped optimiser moves fast weights; every ``k`` steps the slow
    weights move ``alpha`` of the way to them and the fast weights restart from there."""

    def __init__(self, base: torch.optim.Optimizer, k: int = 5, alpha: float = 0.5) -> None:
        super().__init__(base)
        self.k, self.alpha, self.steps = k, alpha, 0
        self.slow = [p.detach().clone() for g in base.param_groups for p in g["params"]]

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = self.base.step(closure)
        self.steps += 1
        if self.steps % self.k == 0:
            for slow, p in zip(self.slow, (p for g in self.param_groups for p in g["params"])):
                slow.add_(p - slow, alpha=self.alpha)
                p.copy_(slow)
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {"base": self.base.state_dict(), "steps": self.steps, "slow": self.slow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.base.load_state_dict(state["base"])
        self.steps = state["steps"]
        for mine, saved in zip(self.slow, state["slow"]):
            mine.copy_(saved)


class LookaheadEMA:
    """airbench's Lookahead (Jordan 2024, airbench94): every ``every`` steps the model's floating-point
    state — weights *and* batch-norm statistics — moves into an exponential average, and the model
    continues from the average. The average's decay is ``BASE ** every * (step / total) ** 3``: nearly 0
    early (the average follows the model), rising to 0.77 at the end; at the last step the model becomes
    the average. Integer buffers (batch counts) are left alone."""

    BASE = 0.95

    def __init__(self, model: nn.Module, every: int = 5) -> None:
        if every < 1:
            raise ConfigError(f"lookahead_ema must be a step count >= 1 (or 0 for off), got {every}")
        self.every = every
        self.average = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    def decay(self, step: int, total: int) -> float:
        return self.BASE**self.every * (step / max(total, 1)) ** 3

    @torch.no_grad()
    def update(self, model: nn.Module, step: int, total: int) -> None:
        """After optimiser step ``step`` (1-based) of ``total``."""
        if step % self.every == 0:
            self._pull(model, self.decay(step, total))
        if step == total:
            self._pull(model, 1.0)

    def _pull(self, model: nn.Module, decay: float) -> None:
        state = model.state_dict()
        for name, avg in self.average.items():
            avg.lerp_(state[name], 1 - decay)
            state[name].copy_(avg)

    def state_dict(self) -> dict[str, Any]:
        return {"every": self.every, "average": self.average}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, avg in self.average.items():
            avg.copy_(state["average"][name])


class SAM(_Wrapper):
    """Sharpness-aware minimisation (Foret et al., 2021). ``first_step`` moves to the worst point
    within ``rho`` (along the gradient), the caller recomputes the gradient there, and ``step``
    returns to the original weights and applies the wrapped optimiser with that gradient."""

    requires_second_pass = True

    def __init__(self, base: torch.optim.Optimizer, rho: float = 0.05) -> None:
        super().__init__(base)
        self.rho = rho
        self.offsets: dict[torch.Tensor, torch.Tensor] = {}

    @torch.no_grad()
    def first_step(self) -> None:
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        norm = torch.norm(torch.stack([p.grad.norm(2) for p in params]), 2) if params else torch.tensor(0.0)
        scale = self.rho / (norm + 1e-12)
        for p in params:
            e = p.grad * scale
            p.add_(e)
            self.offsets[p] = e

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        for p, e in self.offsets.items():
            p.sub_(e)
        self.offsets.clear()
        return self.base.step(closure)

    def state_dict(self) -> dict[str, Any]:
        return {"base": self.base.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.base.load_state_dict(state["base"])
