"""Resolve, prepare, then run: a training config with every ``auto`` decided before anything trains.

``resolve(cfg)`` is a pure function of the config and the data: it works on a copy (the caller's
config is never changed), makes nothing on disk and changes nothing in the process, and decides, in
order: the model when none is given (from the data: ``models/default.py``), the run folder's path
(new, numbered if taken; or the one to resume — ``--resume auto`` takes the folder ``--out/--name``
names when it holds a checkpoint), the threads, the data and its validation split, the task and loss,
the image size and colour space (catalogue weights bring their own preprocessing — input size,
resize, interpolation, mean/std), the augmentation, the class and sample weights, the decoding
workers, and whether a data-fitted layer is fitted. The result is a frozen ``Plan``.

``prepare(plan)`` is the one step with side effects, in this order: the threads set, freed memory
kept, the generators seeded, the run folder made, the model built (with its ``--init`` weights,
fetched by rank 0 first) and moved to the device, and the precision and memory format decided — the
one automatic choice that is a measurement (``precision.py``; cached per model, shape and CPU). Its
``ResolvedConfig`` is the plan plus the model and that verdict; its ``cfg`` is what ``config.yaml``
holds. Under torchrun every rank resolves the same config; what must be decided once (the run
folder, the precision verdict) is decided by rank 0, or collectively, and is the same everywhere.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..amp import INFER_PRECISIONS
from ..config import from_dict
from ..data.loader import use_cache
from ..data.pipeline import AugmentConfig, Preprocess, preprocess_for
from ..data.samples import mix_seed
from ..data.source import open_source
from ..data.splits import DataSource, ShardSplit
from ..errors import ConfigError, ImgclsError
from ..memory import keep_freed_memory
from ..models import model_info
from ..models.default import default_model
from ..run import RunFolder
from ..tasks import Task, class_weights_auto, pos_weight_auto
from ..transfer import create_model, load_pretrained
from ..tta import BATCH_VIEWS, IMAGE_VIEWS
from .budget import parse_duration
from .config import TrainConfig, parse_size_schedule
from .distributed import Dist, cpu_cores
from .precision import Verdict, choose

# how to run, not what to compute: a resumed run takes these from the command line, the rest from
# the run folder's config.yaml
RESUME_OVERRIDES = ("stop_after_steps", "save_every", "progress", "tensorboard", "eval_test", "threads")


@dataclass(frozen=True)
class Plan:
    cfg: TrainConfig  # every auto decided but the precision and memory format
    run: RunFolder  # its path: prepare() makes it
    resuming: bool
    dist: Dist
    source: DataSource  # with its validation split
    task: Task
    pre: Preprocess
    aug: AugmentConfig
    sizes: tuple[tuple[int, int], ...]  # progressive resizing: (size, until epoch)
    entry: Any  # the catalogue entry --init names, or None
    workers: int
    threads: int
    sample_weights: np.ndarray | None
    fit_data: bool  # a data-fitted layer (airbench's whitening) is fitted before the first step
    notes: tuple[str, ...]  # what was decided and why, for the log

    def size_at(self, epoch: int) -> int:
        for size, until in self.sizes:
            if epoch < until:
                return size
        return self.sizes[-1][0] if self.sizes else self.pre.size


@dataclass(frozen=True)
class ResolvedConfig(Plan):
    model: nn.Module  # built once (the precision trial needs it), initialised, on the device
    precision: Verdict


KEEP = ("best", "last")  # which epoch's weights a run saves and tests


def resolve(cfg: TrainConfig, dist: Dist | None = None) -> Plan:
    """``cfg`` (or, resuming, the run's saved config with the how-to-run fields of ``cfg``) decided;
    nothing is made or changed (``prepare`` does that)."""
    cfg = copy.deepcopy(cfg)
    dist = dist or Dist.from_env(cfg.device)
    notes: list[str] = []
    opened = None
    if cfg.resume and cfg.resume != "auto":
        run = RunFolder(Path(cfg.resume))
        cfg = _saved_config(run, cfg)
        resuming = True
    else:
        if not cfg.model.arch and cfg.data.source:
            opened = open_source(cfg.data.source)
            name, why = default_model(opened)
            cfg = replace(cfg, model=replace(cfg.model, arch=name))
            notes.append(f"model: {name} (no --model given; {why})")
        _check(cfg, dist)
        run, resuming = _run_folder(cfg, dist)
        if resuming:
            cfg = _saved_config(run, cfg)
            notes.append(f"resuming {run.root} (--resume auto found its checkpoint)")
    _check(cfg, dist)
    threads, why = _threads(cfg, dist)
    notes.append(f"threads: {threads} per process ({why})")
    if dist.device.type != "cpu" or dist.enabled:
        notes.append(f"device: {dist.describe()}")

    source = (opened or open_source(cfg.data.source)).with_val(cfg.data.val_fraction, cfg.seed)
    if (why := source.too_few_classes()) is not None:
        raise ConfigError(why)
    if cfg.keep not in KEEP:
        raise ConfigError(f"keep must be one of {', '.join(KEEP)}, got {cfg.keep!r}")
    if cfg.test_precision not in INFER_PRECISIONS:
        raise ConfigError(
            f"test_precision must be one of {', '.join(INFER_PRECISIONS)}, got {cfg.test_precision!r}"
        )
    if cfg.test_tta not in BATCH_VIEWS:
        raise ConfigError(f"test_tta must be one of {', '.join(BATCH_VIEWS)} (the views of a whole batch; "
                          f"imgcls eval --tta also takes {', '.join(IMAGE_VIEWS)}), got {cfg.test_tta!r}")  # fmt: skip
    if "val" not in source.splits:
        for wants, name in (
            (cfg.early_stop, "--early-stop"),
            (cfg.sched.schedule == "plateau", "--schedule plateau"),
        ):
            if wants:
                raise ConfigError(f"{name} goes by the validation score, and --val-fraction 0 leaves no val split: "
                                  "give a fraction (e.g. --val-fraction 0.1) or drop the option")  # fmt: skip
        notes.append(
            "validation: none (--val-fraction 0): every training image trains; the last epoch's weights are kept"
        )
    kind = cfg.task.task
    if kind == "auto":
        kind = source.task
        notes.append(f"task: {kind} (from the data: {source.num_classes} classes)")
    info = model_info(cfg.model.arch)
    sizes = tuple(parse_size_schedule(cfg.data.img_size_schedule, cfg.epochs))
    entry = _catalogue_entry(cfg.model.init, cfg.model.arch)
    img_size = cfg.data.img_size or (entry.preprocess.size if entry else None)
    pre = preprocess_for(info, source.channels, img_size, cfg.data.color_space)
    if entry and pre.color_space == "rgb":  # the weights' own preprocessing, at this input size
        from ..pretrained import preprocess_of

        own = preprocess_of(entry, source.channels, pre.size)
        pre = replace(pre, interpolation=own.interpolation, mean=own.mean, std=own.std, resize=own.resize,
                      crop_pct=own.crop_pct)  # fmt: skip
        notes.append(f"init: {entry.tag} ({entry.source}, {entry.dataset}"
                     + (f", top-1 {entry.top1:.2f} %" if entry.top1 else "")
                     + f"): its preprocessing: resize {pre.side}, crop {pre.size}, {pre.interpolation}, "
                     f"mean {pre.mean}, std {pre.std}")  # fmt: skip
    train = source.split("train")
    targets = torch.from_numpy(getattr(train, "targets", np.zeros(0, np.int64)))
    weights = _class_weights(cfg.task.class_weights, targets, source.num_classes, kind)
    pos_weight = _pos_weight(cfg.task.pos_weight, targets, kind)
    task = Task(kind, source.num_classes, cfg.task.loss, cfg.task.label_smoothing, weights, pos_weight,
                cfg.task.focal_gamma, cfg.task.threshold)  # fmt: skip
    aug, aug_section = cfg.aug.resolve(pre.size, source.channels)
    sample_weights = None
    if cfg.data.balanced_sampler and targets.ndim == 1 and len(targets):
        w = 1.0 / torch.bincount(targets, minlength=source.num_classes).clamp_min(1).float()
        sample_weights = (w[targets] / w[targets].sum()).numpy()
    workers = _workers(cfg, source, pre, dist)
    fit_data = info.model_cls.fits_data and not resuming and not cfg.model.init and not cfg.model.linear_probe

    decided = replace(
        cfg,
        data=replace(cfg.data, img_size=pre.size, color_space=pre.color_space),
        model=replace(cfg.model, init=entry.tag) if entry else cfg.model,
        task=replace(cfg.task, task=kind, loss=task.loss_name),
        aug=aug_section,
        sched=replace(cfg.sched, schedule="linear") if cfg.budget else cfg.sched,
    )
    if cfg.budget:
        notes.append(f"budget: {cfg.budget} for the whole run; the steps are fitted to it after the first few, "
                     "the learning rate decays linearly to zero at its end")  # fmt: skip
    if dist.enabled:
        notes.append(
            f"batch: {cfg.batch_size} per process x {dist.world} process{'es' if dist.world > 1 else ''}"
            + (f" x {cfg.optim.accum_steps} accumulated" if cfg.optim.accum_steps > 1 else "")
            + f" = {cfg.batch_size * dist.world * cfg.optim.accum_steps} images per step (--lr is not scaled)"
        )
    return Plan(decided, run, resuming, dist, source, task, pre, aug, sizes, entry, workers, threads,
                sample_weights, fit_data, tuple(notes))  # fmt: skip


def prepare(plan: Plan) -> ResolvedConfig:
    """The plan carried out: threads, seeds, the run folder, the model with its weights, and the
    precision verdict (measured when ``auto``). A run that fails here leaves no folder."""
    cfg, dist = plan.cfg, plan.dist
    torch.set_num_threads(plan.threads)
    if dist.device.type == "cuda":
        _cuda_algorithms(cfg.deterministic)
    keep_freed_memory()  # large freed tensors reused, not returned to the kernel (imgcls.memory says why)
    _seed(cfg.seed)  # the same on every rank: the model is initialised identically everywhere
    if dist.is_main:
        plan.run.create()
    dist.barrier()
    notes = list(plan.notes)
    try:
        model = create_model(cfg.model.arch, num_classes=plan.task.num_outputs, in_chans=plan.pre.channels,
                             **cfg.model.model_args)  # fmt: skip
        if cfg.model.init and not plan.resuming:
            init = _fetch(plan.entry, dist, cfg.progress) if plan.entry else cfg.model.init
            for note in load_pretrained(model, init, verbose=False):
                notes.append(f"init: {note}")
        model.to(dist.device)
        verdict = _precision(plan, model)
        if cfg.precision in ("auto", "bf16-if-native") or cfg.channels_last == "auto":
            notes.append(f"precision: {verdict.describe()}")
        if verdict.channels_last:
            model.to(memory_format=torch.channels_last)
        if cfg.sync_bn and dist.enabled:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        if dist.rank:  # what each rank draws from here on (dropout...) differs, reproducibly
            _seed(mix_seed(cfg.seed, dist.rank))
    except BaseException:
        if not plan.resuming and dist.is_main:
            plan.run.remove_if_unused()
        raise
    decided = replace(
        cfg, precision=verdict.precision, channels_last="on" if verdict.channels_last else "off"
    )
    fields = {f.name: getattr(plan, f.name) for f in dataclasses.fields(Plan)}
    return ResolvedConfig(**{**fields, "cfg": decided, "notes": tuple(notes)}, model=model, precision=verdict)


def _cuda_algorithms(deterministic: bool) -> None:
    """cuDNN times the convolution algorithms for each input shape and keeps the fastest, unless the
    run asks for determinism: then deterministic algorithms only (an operation that has none warns,
    naming itself) and cuBLAS with a fixed workspace (read when its first handle is made: before the
    model's first step)."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic


def _precision(plan: Plan, model: nn.Module) -> Verdict:
    """The precision and memory format: as named, or measured on the model (``precision.choose``)."""
    cfg, dist, task, pre = plan.cfg, plan.dist, plan.task, plan.pre
    if cfg.model.linear_probe:  # trains a linear layer on cached fp32 features: nothing to measure
        verdict = Verdict(cfg.precision, cfg.channels_last == "on")
        return Verdict("fp32", False) if verdict.precision in ("auto", "bf16-if-native") else verdict
    train = plan.source.split("train")
    x, y = _trial_batch(
        cfg, task, pre, plan.sizes, len(train) if not isinstance(train, ShardSplit) else cfg.batch_size
    )
    key = f"{cfg.model.arch}:{json.dumps(cfg.model.model_args, sort_keys=True)}:{task.num_outputs}:{pre.channels}"
    steps, seconds = _run_length(cfg, train, dist)
    return choose(model, x.to(dist.device), lambda out: task.loss(out, y.to(dist.device)), dist.device,
                  cfg.precision, cfg.channels_last, key=key, dist=dist, run_steps=steps,
                  run_seconds=seconds)  # fmt: skip


def _catalogue_entry(init: str, model: str) -> Any:
    """The catalogue entry ``--init`` names (``resnet50.tv2_in1k``, ``torchvision:resnet50``, ...), or
    None for a file or run folder (a path that exists wins over a name)."""
    if not init or Path(init).exists():
        return None
    from ..pretrained import find, is_weight_name

    return find(init, model) if is_weight_name(init, model) else None


def _fetch(entry: Any, dist: Dist, progress: bool) -> Path:
    """The entry's file: downloaded by rank 0 (the others wait, then find it cached and check it)."""
    from ..pretrained import fetch

    error = None
    if dist.is_main:
        try:
            fetch(entry, progress=progress)
        except ImgclsError as e:
            error = str(e)
    if dist.enabled:
        error = dist.broadcast(error)
    if error:
        raise ImgclsError(error)
    return fetch(entry, progress=False)


def _check(cfg: TrainConfig, dist: Dist) -> None:
    """What can be refused before anything is made."""
    if not cfg.data.source:
        raise ConfigError("no data given: --data SOURCE (e.g. mnist:data/mnist; see the README)")
    if not cfg.model.arch:
        raise ConfigError("no model given: --model NAME (imgcls models lists them)")
    if cfg.optim.sam and cfg.optim.accum_steps > 1:
        raise ConfigError("SAM with gradient accumulation is not supported: use one or the other")
    if cfg.budget:
        parse_duration(cfg.budget)
        if cfg.data.img_size_schedule:
            raise ConfigError(
                "--img-size-schedule is set in epochs; with --budget the epochs are not known ahead"
            )
    if cfg.optim.accum_steps < 1:
        raise ConfigError(f"accum_steps must be at least 1, got {cfg.optim.accum_steps}")
    if cfg.sync_bn and dist.device.type != "cuda":
        raise ConfigError(
            "--sync-bn needs CUDA (SyncBatchNorm has no CPU kernels); on CPUs imgcls averages the "
            "batch-norm statistics over the processes at each evaluation instead"
        )


def _saved_config(run: RunFolder, given: TrainConfig) -> TrainConfig:
    """The run's own config, with the how-to-run fields the caller gave."""
    if not run.is_run():
        raise ConfigError(f"--resume {str(run.root)!r}: no config.yaml there (is it a run folder?)")
    if not run.has_checkpoint():
        raise ConfigError(f"{str(run.last)!r} does not exist: this run has no checkpoint to resume from")
    saved = from_dict(TrainConfig, run.read_config())
    overrides = {name: getattr(given, name) for name in RESUME_OVERRIDES}
    return replace(
        saved, **overrides, data=replace(saved.data, workers=given.data.workers), resume=str(run.root)
    )


def _run_folder(cfg: TrainConfig, dist: Dist) -> tuple[RunFolder, bool]:
    """A new run folder (numbered if the name is taken), or with --resume auto the named one when it
    holds a checkpoint; decided by rank 0 and the same on every rank."""
    name = cfg.name or cfg.model.arch
    decision = None
    if dist.is_main:
        if cfg.resume == "auto":
            named = RunFolder(Path(cfg.out) / name)
            decision = (str(named.root), named.is_run() and named.has_checkpoint())
        else:
            decision = (str(RunFolder.new(cfg.out, name).root), False)
    root, resuming = dist.broadcast(decision)
    return RunFolder(Path(root)), resuming


def _threads(cfg: TrainConfig, dist: Dist) -> tuple[int, str]:
    """Intra-op threads per process: as given; else OMP_NUM_THREADS if the user set it; else the cores
    this process may use divided among the processes of its node. (torchrun sets OMP_NUM_THREADS=1
    when it is unset, which would leave all but one core of each process's share idle: under torchrun
    a 1 there is taken for torchrun's and replaced.)"""
    if cfg.threads:
        return cfg.threads, "--threads"
    omp = os.environ.get("OMP_NUM_THREADS", "")
    torchrun = "LOCAL_WORLD_SIZE" in os.environ
    if omp.isdigit() and int(omp) > 0 and not (torchrun and omp == "1"):
        return int(omp), "OMP_NUM_THREADS"
    cores = cpu_cores()
    if dist.local_world > 1:
        n = max(1, cores // dist.local_world)
        return n, f"{cores} cores / {dist.local_world} processes on this node; set --threads to choose"
    return cores, "one per core"


def _workers(cfg: TrainConfig, source: DataSource, pre: Preprocess, dist: Dist) -> int:
    """Decoding processes per training process: 0 for small images decoded once into memory, else
    up to 4, sharing the node's cores with the other training processes."""
    if cfg.data.workers >= 0:
        return cfg.data.workers
    if use_cache(source.split("train"), pre):
        return 0
    return min(4, max(1, cpu_cores() // dist.local_world))


def _run_length(cfg: TrainConfig, train: Any, dist: Dist) -> tuple[int | None, float | None]:
    """(forward-backward passes per process, seconds) the run is planned to take, as far as known:
    what the precision trial may spend a small share of."""
    if cfg.budget:
        return None, parse_duration(cfg.budget)
    try:
        per_epoch = -(-len(train) // (cfg.batch_size * dist.world))
    except TypeError:  # tar shards without a labels.json: of unknown length
        return None, None
    return cfg.epochs * max(1, per_epoch), None


def _trial_batch(
    cfg: TrainConfig, task: Task, pre: Preprocess, sizes: tuple[tuple[int, int], ...], n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images of the first epoch's shape, and targets of the task's kind: all the precision
    trial needs (its timing does not depend on the pixels)."""
    g = torch.Generator().manual_seed(cfg.seed)
    b = max(1, min(cfg.batch_size, n))
    size = sizes[0][0] if sizes else pre.size
    x = torch.randn(b, pre.channels, size, size, generator=g)
    if task.kind == "multilabel":
        return x, (torch.rand(b, task.num_classes, generator=g) < 0.5).to(torch.uint8)
    return x, torch.randint(0, task.num_classes, (b,), generator=g)


def _seed(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def _class_weights(spec: str, targets: torch.Tensor, num_classes: int, kind: str) -> torch.Tensor | None:
    if spec in ("none", ""):
        return None
    if kind != "multiclass":
        raise ConfigError("class_weights apply to multiclass tasks; use pos_weight for binary / multi-label")
    if spec == "auto":
        return class_weights_auto(targets, num_classes)
    values = [float(v) for v in spec.split(",")]
    if len(values) != num_classes:
        raise ConfigError(f"class_weights has {len(values)} values for {num_classes} classes")
    return torch.tensor(values)


def _pos_weight(spec: str, targets: torch.Tensor, kind: str) -> torch.Tensor | None:
    if spec in ("none", "") or kind == "multiclass":
        return None
    multi_hot = targets if targets.ndim == 2 else torch.nn.functional.one_hot(targets.long(), 2)[:, 1:]
    if spec == "auto":
        return pos_weight_auto(multi_hot)
    return torch.tensor([float(spec)] * multi_hot.shape[1])
