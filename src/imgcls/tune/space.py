"""Search spaces for ``imgcls tune``, in YAML: one entry per training option (any leaf of the training
config, by name: ``lr``, ``weight_decay``, ``label_smoothing``, ``augment``, ``batch_size``,
``img_size``...) or model knob (``model_args.NAME``: what the model's config has, e.g. ``drop_rate``,
``widths``), each a range or a list of choices::

    lr: {low: 1.0e-4, high: 1.0e-1, log: true}
    weight_decay: {low: 1.0e-5, high: 1.0e-1, log: true}
    batch_size: {choices: [32, 64, 128]}
    augment: {choices: [basic, strong]}
    epochs: {low: 2, high: 6}                   # integers where both ends are
    model_args.drop_rate: {low: 0.0, high: 0.5, step: 0.1}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import leaf_paths, load_yaml
from ..engine.config import TrainConfig
from ..errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class Param:
    name: str  # a training-config leaf (or dotted path), or model_args.KEY
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    @property
    def integer(self) -> bool:
        return (
            not self.choices
            and all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high))
            and (self.step is None or float(self.step).is_integer())
        )

    def suggest(self, trial: Any) -> Any:
        if self.choices:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.integer:
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(self.name, float(self.low), float(self.high), step=self.step, log=self.log)


def load_space(path: str | Path, model_fields: set[str] | None = None) -> list[Param]:
    """The parameters of a space file, checked: known option names, sane ranges. ``model_fields``:
    the model config's fields, for ``model_args.KEY``."""
    data = load_yaml(path)
    if not data:
        raise ConfigError(
            f"search space {str(path)!r} is empty: give at least one option, e.g. lr: {{low: 1e-4, high: 1e-1, log: true}}"
        )
    known = leaf_paths(TrainConfig)
    params = []
    for name, spec in data.items():
        where = f"search space {str(path)!r}, {name!r}"
        if name.startswith("model_args."):
            key = name.split(".", 1)[1]
            if model_fields is not None and key not in model_fields:
                raise ConfigError(
                    f"{where}: the model has no field {key!r}{did_you_mean(key, sorted(model_fields))}"
                )
        elif name not in known and name not in known.values():
            raise ConfigError(f"{where}: not a training option{did_you_mean(name, list(known))}")
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: expected {{low: A, high: B}} or {{choices: [...]}}, got {spec!r}")
        unknown = set(spec) - {"low", "high", "log", "step", "choices"}
        if unknown:
            raise ConfigError(
                f"{where}: unknown keys {sorted(unknown)} (use low, high, log, step or choices)"
            )
        if "choices" in spec:
            choices = spec["choices"]
            if not isinstance(choices, list) or not choices:
                raise ConfigError(f"{where}: choices must be a non-empty list")
            params.append(Param(name, choices=tuple(tuple(c) if isinstance(c, list) else c for c in choices)))
            continue
        if "low" not in spec or "high" not in spec:
            raise ConfigError(f"{where}: a range needs both low and high")
        low, high = spec["low"], spec["high"]
        if (
            not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
            or low >= high
        ):
            raise ConfigError(f"{where}: low and high must be numbers with low < high, got {low!r}, {high!r}")
        if spec.get("log") and low <= 0:
            raise ConfigError(f"{where}: a log range needs low > 0, got {low}")
        params.append(Param(name, low, high, bool(spec.get("log", False)), spec.get("step")))
    return params


def overrides(values: dict[str, Any]) -> dict[str, Any]:
    """A trial's values as training-config overrides (``model_args.K`` gathered into ``model_args``)."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name.startswith("model_args."):
            out.setdefault("model_args", {})[name.split(".", 1)[1]] = value
        else:
            out[name] = value
    return out
