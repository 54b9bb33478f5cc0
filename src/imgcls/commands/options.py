"""What the commands share: typed numbers with their ranges, the config tree as options, the data
spec's help, model arguments, the rank under torchrun, images found in folders."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from ..config import Range
from ..errors import ConfigError, ImgclsError

DATA_HELP = (
    "an image folder (ROOT/CLASS/* or ROOT/{train,val,test}/CLASS/*), a .csv/.json label file, tar shards "
    "('dir/train-{000000..000009}.tar'), or a dataset by name (imgcls data list): mnist:DIR, cifar10:DIR, "
    "svhn:DIR, stl10:DIR?fold=K, flowers102:DIR, imagenet:DIR, medmnist:FILE.npz, ..."
)


def parse_model_args(items: Sequence[str]) -> dict[str, Any]:
    """``["act=gelu", "drop_rate=0.2"]`` -> ``{"act": "gelu", "drop_rate": "0.2"}`` (typed later, per model)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--model-arg {item!r} is not KEY=VALUE (e.g. --model-arg act=gelu)")
        out[key.strip()] = value.strip()
    return out


def number(kind: type, valid: Range) -> Any:
    """An argparse type: ``kind`` (int or float) within ``valid``, or an error naming the range."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
            ) from None
        if value not in valid:
            raise argparse.ArgumentTypeError(f"must be {valid}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def add_config_options(p: argparse.ArgumentParser, cls: type) -> None:
    """One --option per leaf of the config tree (dashes for underscores), typed later by the config."""
    import dataclasses

    from ..config import flag_of, help_of, leaves

    groups: dict[str, argparse._ArgumentGroup] = {}
    for path, f, kind in leaves(cls):
        section = path.rsplit(".", 1)[0] if "." in path else "run"
        group = groups.setdefault(section, p.add_argument_group(section))
        flag = "--" + flag_of(f).replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if f.name == "model_args":
            continue
        help_text = f"{help_of(f)} (default: {default})".replace("%", "%%")
        if kind is bool:
            group.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text
            )
        else:
            group.add_argument(flag, default=argparse.SUPPRESS, metavar=flag_of(f).upper(), help=help_text)


def rank() -> int:
    """This process's rank under torchrun (0 otherwise)."""
    import os

    return int(os.environ.get("RANK", "0"))


def expand_images(paths: Sequence[str]) -> list[str]:
    """Files as given; folders -> every image file under them (natural order)."""
    import os

    from ..data.folder import is_image_name
    from ..sorting import natural_key

    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            found = [
                os.path.join(d, f)
                for d, _, fs in os.walk(p)
                for f in fs
                if is_image_name(f) and not f.startswith(".")
            ]
            out += sorted(found, key=natural_key)
        elif os.path.exists(p):
            out.append(p)
        else:
            raise ImgclsError(f"{p!r} does not exist")
    return out


def add_train_options(p: argparse.ArgumentParser, preset: bool, pretrained: bool) -> None:
    """What ``train``, ``finetune`` and ``tune`` take besides the config's own options: --config,
    --preset, --model-arg, --pretrained, then one option per leaf of the training config."""
    from ..engine.config import TrainConfig

    p.add_argument(
        "--config", metavar="YAML", help="a YAML file of config sections (overridden by the options)"
    )
    if preset:
        from ..recipes import presets

        p.add_argument("--preset", metavar="NAME", help=f"start from a bundled recipe ({', '.join(presets())}); "
                       "--config and the options override it")  # fmt: skip
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field of the model, e.g. --model-arg drop_rate=0.2 (repeatable)")  # fmt: skip
    if pretrained:
        p.add_argument(
            "--pretrained", nargs="?", const=True, default=None, metavar="TAG",
            help="start from the model's published ImageNet weights (its default, or TAG, e.g. tv_in1k; "
            "imgcls weights list): fetched into torch hub's / Hugging Face's cache, their preprocessing kept",
        )  # fmt: skip
    add_config_options(p, TrainConfig)


def layers_of(args: argparse.Namespace, preset: str | None) -> list[tuple[str, dict[str, Any]]]:
    """The nested layers under the command line's options: the preset's sections, then --config's."""
    from ..config import load_yaml
    from ..recipes import load_preset

    layers = [(f"preset {preset}", load_preset(preset))] if preset else []
    if getattr(args, "config", None):
        layers.append((f"--config {args.config}", load_yaml(args.config)))
    return layers


def options_of(args: argparse.Namespace) -> dict[str, Any]:
    """The training config's leaves the command line gave (the options add_config_options made), with
    --model-arg's KEY=VALUE pairs as model_args."""
    from ..config import leaf_paths
    from ..engine.config import TrainConfig

    leaves = leaf_paths(TrainConfig)
    given = {k: v for k, v in vars(args).items() if k in leaves}
    if getattr(args, "model_arg", None):
        given["model_args"] = parse_model_args(args.model_arg)
    return given


def compose_args(args: argparse.Namespace, preset: str | None) -> tuple[Any, dict[str, str]]:
    """``config.compose`` of a command's arguments: defaults <- preset <- --config <- options."""
    from ..config import compose
    from ..engine.config import TrainConfig

    return compose(TrainConfig, layers_of(args, preset), options_of(args))


def add_tta_option(p: argparse.ArgumentParser) -> None:
    """``--tta``: the test-time views of ``tta.py``, the one vocabulary."""
    from ..tta import TTA

    p.add_argument("--tta", choices=TTA, default="none",
                   help="test-time views: none | flip | flip-shift (the logits averaged, as training's --test-tta) | "
                   "ten_crop | multiscale (the probabilities averaged); mirrors only for a model trained with them")  # fmt: skip


def add_precision_option(p: argparse.ArgumentParser) -> None:
    """``--precision``: what inference of a trained run runs in (``amp.INFER_PRECISIONS``), by default what
    the run's own test pass ran in, so that eval and predict give the figure the run recorded."""
    from ..amp import INFER_PRECISIONS

    p.add_argument("--precision", choices=INFER_PRECISIONS,
                   help="the forward passes' precision: fp32, or bf16-if-native (bf16 autocast where this device "
                   "computes bf16 natively, fp32 elsewhere); default: what the run's test pass ran in, as its "
                   "weights record (--test-precision)")  # fmt: skip
