"""Training presets: recipes kept as YAML files of config sections beside this module
(``imgcls train --preset NAME``). A preset is the base of the config; ``--config`` and the options on
the command line override it, and the run folder's config.yaml holds what came of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import load_yaml, merge
from ..errors import ConfigError, did_you_mean

HERE = Path(__file__).parent


def presets() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.yaml"))


def load_preset(name: str) -> dict[str, Any]:
    """The preset's sections; one that says ``extends: OTHER`` is OTHER with its own keys on top
    (section by section)."""
    if name not in presets():
        raise ConfigError(
            f"no preset {name!r}{did_you_mean(name, presets())} (presets: {', '.join(presets())})"
        )
    recipe = load_yaml(HERE / f"{name}.yaml")
    base = recipe.pop("extends", None)
    return merge(load_preset(base), recipe) if base else recipe
