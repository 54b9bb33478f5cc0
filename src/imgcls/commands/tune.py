"""`imgcls tune`: a hyper-parameter search on Optuna, each trial a run folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import at_least
from ..errors import ConfigError
from .options import add_train_options, layers_of, number, options_of


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune",
        help="search hyper-parameters on Optuna: each trial a run folder; the best written as a recipe",
        description="Train --trials runs of MODEL on DATA with values drawn from --space (a YAML file: each "
        "training option or model_args.KEY with {low, high[, log, step]} or {choices: [...]}) by Optuna's TPE "
        "sampler, pruning runs whose validation score falls behind (median or successive halving). Trials go to "
        "OUT/STUDY/trial-NNN; OUT/STUDY/best.yaml is the best trial's config (imgcls train --config reproduces "
        "it); OUT/STUDY/tune.html shows the history and each option's importance (fANOVA). Processes that "
        "name the same --storage and --study share the study (parallel trials, on one machine or many).",
    )
    p.add_argument("--space", required=True, metavar="YAML", help="the search space")
    p.add_argument(
        "--trials", type=number(int, at_least(1)), default=20, help="trials this process runs (default: 20)"
    )
    p.add_argument("--timeout", help="stop starting trials after this long (20s, 10m, 1h)")
    p.add_argument(
        "--storage", help="Optuna storage URL shared by processes, e.g. sqlite:///study.db (default: memory)"
    )
    p.add_argument("--study", help="study name (default: MODEL-tune)")
    p.add_argument("--pruner", choices=["median", "halving", "none"], default="median")
    add_train_options(p, preset=True, pretrained=False)  # what every trial starts from
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from ..config import compose, merge
    from ..engine.budget import parse_duration
    from ..engine.config import TrainConfig
    from ..models import model_info
    from ..tune.report import write_report
    from ..tune.space import load_space
    from ..tune.study import TuneSpec, run_study, write_recipe

    layers, fixed = layers_of(args, args.preset), options_of(args)
    first, _ = compose(TrainConfig, layers, fixed)  # checked before any trial runs
    base: dict = {}
    for _, layer in layers:
        base = merge(base, layer)
    if not first.data.source:
        raise ConfigError("imgcls tune needs --data SOURCE (the data every trial trains on)")
    if args.trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {args.trials}")
    model = first.model.arch
    fields = {f.name for f in dataclasses.fields(model_info(model).config)} if model else None
    space = load_space(args.space, fields)
    study = args.study or f"{model or 'default'}-tune"
    spec = TuneSpec(base=base, fixed=fixed, space=space, trials=args.trials,
                    timeout=parse_duration(args.timeout) if args.timeout else None, storage=args.storage,
                    study=study, pruner=args.pruner, out=Path(first.out), seed=first.seed)  # fmt: skip
    result = run_study(spec)
    folder = Path(first.out) / study
    folder.mkdir(parents=True, exist_ok=True)
    finished = [t for t in result.trials if t.value is not None]
    recipe = write_recipe(result, folder / "best.yaml") if finished else None
    report = write_report(result, folder / "tune.html", recipe)
    states = {}
    for t in result.trials:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    print(f"study {study}: {len(result.trials)} trials ({', '.join(f'{n} {k}' for k, n in states.items())})")
    if finished:
        best = result.best_trial
        print(f"best: trial {best.number}, validation score {best.value:.4f}, {best.params}")
        print(f"recipe: {recipe}  (imgcls train --config {recipe} reproduces it)")
    print(f"report: {report}")
    return 0
