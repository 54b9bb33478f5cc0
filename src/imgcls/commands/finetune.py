"""`imgcls finetune`: `imgcls train` from pretrained weights, over the `finetune` preset's defaults."""

from __future__ import annotations

import argparse

from .options import add_train_options
from .train import run


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune",
        help="fine-tune pretrained weights (--pretrained, --init): the head first, then everything with layer-wise rates",
        description="imgcls train over the finetune preset (recipes/finetune.yaml): --freeze backbone for "
        "--freeze-epochs 1 (batch norms of the frozen backbone kept in eval mode), then every layer with "
        "--layer-decay 0.85, after a 0.5-epoch warm-up. Every train option is available and overrides these.",
    )
    add_train_options(p, preset=False, pretrained=True)
    p.set_defaults(func=run)
