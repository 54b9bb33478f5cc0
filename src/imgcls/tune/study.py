"""``imgcls tune``: hyper-parameter search on Optuna (TPE sampler; median or successive-halving
pruning on the per-epoch validation score). Each trial is an ordinary run folder
(``OUT/STUDY/trial-NNN``); the study lives in Optuna's storage (in memory, or ``sqlite:///study.db``
and any other RDB URL Optuna takes, shared by every process that names it: parallel trials on
several processes or machines); the best trial's resolved config is written as a recipe
(``OUT/STUDY/best.yaml``) that ``imgcls train --config`` reproduces.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import apply_overrides, from_dict
from ..engine.config import TrainConfig
from ..engine.hooks import Hook
from ..engine.trainer import Trainer
from ..errors import ConfigError
from ..run import RunFolder
from .space import Param, overrides

PRUNERS = ("median", "halving", "none")
# how a trial runs, not what it computes: left out of the recipe
RUN_FIELDS = ("out", "name", "resume", "stop_after_steps", "progress", "tensorboard")


@dataclass(frozen=True)
class TuneSpec:
    base: dict[str, Any]  # nested training config (YAML sections) of every trial
    fixed: dict[str, Any]  # overrides given on the command line
    space: list[Param]
    trials: int  # this process's trials
    timeout: float | None  # seconds for this process
    storage: str | None
    study: str
    pruner: str
    out: Path
    seed: int


class Pruning(Hook):
    """Reports each epoch's validation score to the trial; ends the run when Optuna prunes it."""

    def __init__(self, trial: Any, score: str) -> None:
        self.trial, self.score, self.pruned = trial, score, False

    def epoch_end(self, t: Trainer, record: dict[str, Any]) -> bool:
        self.trial.report(record["val"][self.score], record["epoch"])
        last = t is not None and t.budget is None and t.state.epoch >= t.cfg.epochs
        self.pruned = not last and self.trial.should_prune()  # a finished run is a result, not a prune
        return self.pruned


def _pruner(name: str) -> Any:
    import optuna

    if name not in PRUNERS:
        raise ConfigError(f"--pruner must be one of {', '.join(PRUNERS)}, got {name!r}")
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def trial_config(spec: TuneSpec, values: dict[str, Any], number: int) -> TrainConfig:
    given = {**spec.fixed, **overrides(values)}
    if "model_args" in spec.fixed and "model_args" in given:
        given["model_args"] = {**spec.fixed["model_args"], **overrides(values).get("model_args", {})}
    given.update(out=str(spec.out / spec.study), name=f"trial-{number:03d}", resume="")
    return apply_overrides(TrainConfig, spec.base, given)


def _open_study(spec: TuneSpec, seed: int) -> Any:
    """The study, created or joined. Processes starting together on a new database race to create
    its tables; the loser retries (a few times, backing off) and then joins."""
    import time

    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(6):
        try:
            return optuna.create_study(
                study_name=spec.study, storage=spec.storage, load_if_exists=True, direction="maximize",
                sampler=optuna.samplers.TPESampler(seed=seed), pruner=_pruner(spec.pruner),
            )  # fmt: skip
        except SQLAlchemyError:
            if attempt == 5:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def run_study(spec: TuneSpec) -> Any:
    """Run this process's trials; returns the (shared) study."""
    import optuna

    # several processes on one storage must not draw the same values: each process gets its own
    # sampler seed (the given one alone when the study is in memory, so a run is reproducible)
    seed = spec.seed if spec.storage is None else spec.seed * 1_000_003 + os.getpid()
    study = _open_study(spec, seed)

    def objective(trial: optuna.Trial) -> float:
        values = {p.name: p.suggest(trial) for p in spec.space}
        cfg = trial_config(spec, values, trial.number)
        trainer = Trainer(cfg)
        score = "f1" if trainer.task.kind == "multilabel" else "acc"
        pruning = Pruning(trial, score)
        result = trainer.fit([pruning])
        trainer.close()
        trial.set_user_attr("run", str(result.run))
        trial.set_user_attr("epochs", result.epoch)
        if pruning.pruned:
            raise optuna.TrialPruned(f"pruned after epoch {result.epoch}")
        if not result.best:
            raise ConfigError(f"trial {trial.number} ended without a validation score ({result.status})")
        return float(result.best[score])

    study.optimize(objective, n_trials=spec.trials, timeout=spec.timeout, gc_after_trial=True)
    return study


def write_recipe(study: Any, path: Path) -> Path:
    """The best trial's resolved config, less how it ran, as a ``--config`` file."""
    import yaml

    best = study.best_trial
    run = Path(best.user_attrs["run"])
    data = {k: v for k, v in RunFolder(run).read_config().items() if k not in RUN_FIELDS}
    from_dict(TrainConfig, data)  # still a valid config
    header = (f"# imgcls tune: the best trial of study {study.study_name!r} (trial {best.number}, validation "
              f"score {best.value:.4f}, run {run}).\n# imgcls train --config {path} reproduces it.\n")  # fmt: skip
    path.write_text(header + yaml.safe_dump(data, sort_keys=False, default_flow_style=None))
    return path
