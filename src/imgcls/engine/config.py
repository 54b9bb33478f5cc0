"""The training configuration: one dataclass per component, each owning its defaults.

``imgcls train --help`` lists every leaf; YAML files nest them by section. The resolved config
(model defaults filled in: image size, precision, augmentation) is saved as ``config.yaml`` in the
run folder and is all ``--resume`` needs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..config import Range, at_least, opt, share
from ..data.pipeline import AugmentConfig, augment_preset
from ..errors import ConfigError
from .optim import OptimConfig
from .schedule import ScheduleConfig


@dataclass
class DataConfig:
    source: str = opt(
        "",
        "what to train on: mnist:DIR, cifar10:DIR, an image folder, labels.csv, shards (see README)",
        flag="data",
        old="data",
    )
    val_fraction: float = opt(
        0.1,
        "held-out share of train when the data has no val split (seeded, stratified); 0: no validation, "
        "every training image trains and the last epoch's weights are kept",
        valid=share(high_open=True),
    )
    img_size: int | None = opt(None, "input size (default: the model's)", valid=at_least(8))
    img_size_schedule: str = opt("", "progressive resizing, SIZE:UNTIL_EPOCH,...,SIZE (e.g. 64:2,96:4,128)")
    color_space: str = opt(
        "auto", "auto | rgb | gray | yuv | fft | lbp (auto: gray for 1-channel data and models)"
    )
    workers: int = opt(
        -1,
        "decoding processes (-1: 0 for cached small images, else min(4, cores))",
        valid=at_least(-1),
    )
    on_bad_image: str = opt("error", "error | skip (skip lists bad files in bad_images.csv)")
    max_bad_fraction: float = opt(
        0.01, "with skip: stop when more than this share of images is bad", valid=share()
    )
    balanced_sampler: bool = opt(
        False, "draw training images with probability inverse to their class frequency"
    )


@dataclass
class ModelSection:
    arch: str = opt(
        "",
        "registered model name (imgcls models lists them; default: chosen from the data and said in the log)",
        flag="model",
        old="model",
    )
    model_args: dict[str, Any] = opt(
        {}, "config overrides of the model, e.g. {drop_rate: 0.2} (--model-arg K=V)"
    )
    init: str = opt(
        "", "start from these weights: a run folder, model.safetensors, or a torchvision / timm state dict"
    )
    freeze: str = opt(
        "none",
        "none | backbone | stages:N (the stem and the first N-1 blocks); frozen norms stay in eval mode",
    )
    freeze_epochs: int = opt(
        0,
        "keep --freeze for this many epochs, then train everything (0: the whole run)",
        valid=at_least(0),
    )
    linear_probe: bool = opt(
        False, "train only a linear classifier on the frozen backbone's pooled features (computed once)"
    )


@dataclass
class TaskConfig:
    task: str = opt("auto", "auto | binary | multiclass | multilabel (auto: from the data)")
    loss: str = opt("auto", "auto | ce | bce | focal (auto: ce for multiclass, bce otherwise)")
    label_smoothing: float = opt(0.0, "cross-entropy label smoothing", valid=share(high_open=True))
    class_weights: str = opt("none", "none | auto (inverse class frequency) | comma-separated weights")
    pos_weight: str = opt(
        "none", "BCE positive weight: none | auto (negatives/positives per label) | a number"
    )
    focal_gamma: float = opt(2.0, "focal loss gamma", valid=at_least(0))
    threshold: float = opt(
        0.5,
        "decision threshold of binary / multi-label outputs",
        valid=share(),
    )


@dataclass
class AugSection:
    augment: str = opt("basic", "augmentation preset: none | basic | strong (fields below override it)")
    hflip: float | None = opt(None, "probability of a left-right flip", valid=share())
    alt_flip: bool | None = opt(
        None,
        "alternating flip: each image mirrored in every other epoch, a seeded half first (set --hflip 0)",
    )
    pad_crop: int | None = opt(None, "pad-and-crop padding in pixels", valid=at_least(0))
    pad_mode: str | None = opt(None, "zeros | reflect: what fills pad-and-crop's border (airbench: reflect)")
    rrc: bool | None = opt(None, "random-resized crop")
    rrc_scale: tuple[float, float] | None = opt(
        None,
        "random-resized crop area range, e.g. 0.08,1",
        valid=share(low_open=True),
    )
    color_jitter: float | None = opt(
        None, "brightness/contrast/saturation jitter strength", valid=at_least(0)
    )
    grayscale: float | None = opt(None, "probability of converting to grayscale", valid=share())
    auto_augment: str | None = opt(None, "none | randaugment | trivialaugment")
    ra_ops: int | None = opt(None, "RandAugment operations per image", valid=at_least(0))
    ra_magnitude: int | None = opt(None, "RandAugment magnitude (0-30)", valid=Range(0, 30))
    erasing: float | None = opt(None, "random erasing probability", valid=share())
    mixup: float | None = opt(None, "mixup alpha (0 = off)", valid=at_least(0))
    cutmix: float | None = opt(None, "cutmix alpha (0 = off)", valid=at_least(0))

    def resolve(self, size: int, channels: int) -> tuple[AugmentConfig, AugSection]:
        """(the preset for this image size and data with the fields given here on top, this section
        with every field filled in); this section itself is left as it is."""
        cfg = augment_preset(self.augment, size, channels)
        filled = {}
        for f in fields(self):
            if f.name != "augment":
                value = getattr(self, f.name)
                if value is None:
                    filled[f.name] = getattr(cfg, f.name)
                else:
                    setattr(cfg, f.name, value)
        cfg.__post_init__()
        return cfg, replace(self, **filled)


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSection = field(default_factory=ModelSection)
    task: TaskConfig = field(default_factory=TaskConfig)
    aug: AugSection = field(default_factory=AugSection)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: ScheduleConfig = field(default_factory=ScheduleConfig)
    epochs: int = opt(10, "epochs to train", valid=at_least(1))
    budget: str = opt(
        "",
        "train for this wall-clock time instead of --epochs (20s, 10m, 1h): the whole command, start-up and "
        "evaluation included; steps fitted to it, the learning rate decayed linearly to zero at its end",
    )
    batch_size: int = opt(
        64,
        "images per process and batch: a step sees batch_size x processes x accum_steps (the global batch)",
        valid=at_least(1),
    )
    seed: int = opt(0, "seed of everything: split, order, augmentation, initialisation", valid=at_least(0))
    precision: str = opt(
        "auto",
        "auto | fp32 | bf16 | fp16 | bf16-if-native (auto: bf16 autocast where measured faster; bf16-if-native: "
        "bf16 wherever the CPU or GPU computes it natively, else fp32, not measured)",
    )
    channels_last: str = opt("auto", "auto | on | off (auto: with bf16 for conv nets, where measured faster)")
    compile: bool = opt(False, "torch.compile the model (slower to start; rarely faster to train on a CPU)")
    threads: int = opt(
        0,
        "intra-op threads per process (0: the cores this process may use, divided among the processes of a node)",
        valid=at_least(0),
    )
    device: str = opt("auto", "auto | cpu | cuda | cuda:N")
    deterministic: bool = opt(
        False,
        "GPU: deterministic algorithms only (cuDNN's autotuner off, cuBLAS's fixed workspace), so that a resumed "
        "or repeated run gives the same bits; somewhat slower (a CPU run is deterministic already)",
    )
    ema: float = opt(
        0.0,
        "EMA decay of the weights (0 = off; e.g. 0.999); the EMA is evaluated and saved",
        valid=share(high_open=True),
    )
    bn_recompute: str = opt(
        "auto",
        "auto | on | off: batch-norm statistics recomputed on the training images before each evaluation "
        "(auto: when an epoch has fewer than 50 steps, too few for the running averages to settle)",
    )
    early_stop: int = opt(
        0, "stop after this many epochs without a better val score (0 = off)", valid=at_least(0)
    )
    max_bad_steps: int = opt(
        5,
        "abort after this many non-finite losses in a row (each is skipped)",
        valid=at_least(1),
    )
    save_every: int = opt(
        0,
        "also checkpoint every this many steps (0: at the end of each epoch only)",
        valid=at_least(0),
    )
    stop_after_steps: int = opt(
        0,
        "stop (as if interrupted, resumable) after this many steps in total (0 = off)",
        valid=at_least(0),
    )
    out: str = opt("runs", "folder that holds the run folders")
    name: str = opt("", "run folder name (default: the model name, numbered if taken)")
    resume: str = opt(
        "",
        "continue the run in this folder exactly where it stopped; auto: the run folder --out/--name names, "
        "if it holds a checkpoint (else start it) - what torchrun --max-restarts needs",
    )
    sync_bn: bool = opt(
        False,
        "synchronise batch-norm statistics across GPUs (CUDA; on CPUs they are averaged at each evaluation)",
    )
    tensorboard: bool = opt(True, "write TensorBoard event files into the run folder")
    progress: bool = opt(
        True, "show progress bars (where the output is not a terminal: a plain line every --log-every s)"
    )
    log_every: float = opt(
        30.0,
        "seconds between plain progress lines when the output is not a terminal (0: epoch lines only)",
        valid=at_least(0),
    )
    test_tta: str = opt(
        "none",
        "none | flip | flip-shift: the test split's final evaluation averages the logits of these views "
        "(flip: each image and its mirror; flip-shift: also shifted one pixel each way, airbench's; mirrors "
        "only for a model trained with them); imgcls eval --tta NAME gives the same figure",
    )
    test_precision: str = opt(
        "fp32",
        "fp32 | bf16-if-native: the precision of the test split's final evaluation, written with the weights so "
        "that imgcls eval and predict run in it too and give the same figure (bf16-if-native: bf16 autocast "
        "where the CPU or GPU computes it natively, fp32 elsewhere; a few images in 10,000 differ from fp32)",
    )
    keep: str = opt(
        "best",
        "best | last: the weights saved and tested - the best validation epoch's, or the last epoch's (a fixed "
        "schedule that selects nothing, as airbench's; what a run without a val split keeps)",
    )
    eval_test: bool = opt(True, "evaluate the best weights on the test split at the end, if there is one")


def parse_size_schedule(text: str, epochs: int) -> list[tuple[int, int]]:
    """'64:2,96:4,128' -> [(64, 2), (96, 4), (128, epochs)]: size until (exclusive) epoch."""
    if not text:
        return []
    out = []
    parts = [p.strip() for p in text.split(",") if p.strip()]
    for i, part in enumerate(parts):
        size, _, until = part.partition(":")
        try:
            out.append((int(size), int(until) if until else epochs))
        except ValueError:
            raise ConfigError(f"img_size_schedule {text!r}: expected SIZE:UNTIL_EPOCH,...,SIZE") from None
        if not until and i != len(parts) - 1:
            raise ConfigError(f"img_size_schedule {text!r}: only the last size may omit its epoch")
    if any(b[1] <= a[1] for a, b in itertools.pairwise(out)):
        raise ConfigError(f"img_size_schedule {text!r}: epochs must increase")
    return out
