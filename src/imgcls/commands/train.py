"""`imgcls train`: train a model on a data source; leaves a self-describing run folder."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from ..errors import ConfigError
from .options import add_train_options, rank


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model on a data source; leaves a self-describing run folder",
        description="Train MODEL on DATA. Every option below is a field of the training config; a YAML "
        "file (--config) sets them by section and options on the command line override it. The run folder "
        "gets config.yaml (every default resolved, headed by where each value that is not a default came from), "
        "labels.json, metrics.jsonl, steps.jsonl, checkpoints/last.pt, model.safetensors (best weights) and "
        "TensorBoard events. Exit status: 0 finished, 130 interrupted (resumable), 2 a usage or data error, "
        "3 the loss diverged.",
    )
    add_train_options(p, preset=True, pretrained=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.trainer import train

    cfg, origins = train_config(args, with_origins=True)
    result = train(cfg, origins=origins)
    if rank():  # under torchrun, rank 0 alone reports
        return 130 if result.status == "interrupted" else 0
    best = result.best
    summary = f"run: {result.run}  ({result.status} after epoch {result.epoch}, step {result.step})"
    if set(best) - {"epoch"}:
        summary += "\nbest val: " + "  ".join(
            f"{k} {v:.4f}" for k, v in best.items() if k not in ("epoch", "images")
        )
        summary += f"  (epoch {int(best['epoch']) + 1})"
    if result.test:
        summary += "\ntest:     " + "  ".join(f"{k} {v:.4f}" for k, v in result.test.items() if k != "images")
    if result.status in ("interrupted", "stopped"):
        summary += f"\nresume with: imgcls train --resume {result.run}"
    print(summary)
    return 130 if result.status == "interrupted" else 0


def train_config(args: argparse.Namespace, with_origins: bool = False) -> Any:
    """The ``TrainConfig`` of parsed ``imgcls train`` / ``finetune`` arguments (``config.compose``:
    the defaults, the preset — ``finetune`` for imgcls finetune — the YAML file, the options), with
    ``--pretrained`` made an ``--init`` name; with ``with_origins`` also where each value came from."""
    from .options import compose_args

    finetune = args.command == "finetune"
    if (
        finetune
        and not getattr(args, "init", None)
        and not args.pretrained
        and not getattr(args, "resume", None)
    ):
        raise ConfigError(
            "imgcls finetune needs --pretrained [TAG] or --init WEIGHTS (a run folder, a torchvision / "
            "timm state dict, or a catalogue name: imgcls weights list)"
        )
    cfg, origins = compose_args(args, preset="finetune" if finetune else getattr(args, "preset", None))
    if args.pretrained:
        if cfg.model.init:
            raise ConfigError(f"--pretrained and --init {cfg.model.init!r}: give one of them")
        if not cfg.model.arch:
            raise ConfigError(
                "--pretrained needs --model NAME (imgcls weights list shows the models with weights)"
            )
        tag = cfg.model.arch if args.pretrained is True else args.pretrained
        cfg = replace(cfg, model=replace(cfg.model, init=tag))
        origins["model.init"] = "--pretrained"
    return (cfg, origins) if with_origins else cfg
