"""The ``imgcls`` commands, one module each: its options (``add(sub)``) and its handler (``run``, or
``run_ACTION`` for a command with actions). ``cli.py`` only builds the parser from them, in this
order, and dispatches."""

from __future__ import annotations

from . import bench, data, eval, export, features, finetune, models, predict, serve, train, tune, weights

COMMANDS = (models, train, eval, predict, finetune, tune, features, export, serve, bench, weights, data)
