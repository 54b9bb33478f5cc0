"""The run folder, owned here: ``RunFolder`` names every file in it, ``RunMeta`` is the typed,
versioned metadata written into its ``model.safetensors``. Training writes through them; evaluation,
prediction, features, transfer, export and the server read through them. No other module spells a
run-folder file name or a metadata key.

    runs/NAME/
      config.yaml          the resolved training config (every default and every `auto` decided)
      labels.json          class names in output order (with the dataset's class ids: {"classes", "ids"})
      metrics.jsonl        one line per epoch (train and val scores, lr, skipped steps)
      steps.jsonl          one line per optimiser step (loss, lr)
      checkpoints/last.pt  everything an exact resume needs
      model.safetensors    the best weights + RunMeta
      test_metrics.json    the best weights on the test split
      timings.json         where the run's wall time went
      tensorboard/         event files
      bad_images.csv       with --on-bad-image skip: the files left out and why
      calibration.json     a temperature fitted by `imgcls eval --calibrate`
      model.onnx, model.pt2 (+ .json sidecars)   what `imgcls export` wrote
      metrics.json, report.html   what `imgcls eval` wrote

Format history (``imgcls_format`` in the metadata): 1 — model, model_args, num_outputs, classes, task,
threshold, preprocess, hflip, pad_crop, epoch, val; 2 — adds init (the weights training started
from) and imgcls_version. A format-1 folder loads with those two empty. Format 2 later gained
test_precision (what the run's test pass ran in, so eval and predict run in it too), fp32 when absent.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .amp import INFER_PRECISIONS
from .config import dump_yaml, load_yaml
from .errors import ImgclsError
from .fileio import clean_temp, load_safetensors, save_safetensors, write_text_atomic

FORMAT = 2
FORMATS = (1, 2)
WEIGHTS = "model.safetensors"


class RunFolderError(ImgclsError, ValueError):
    """A path that is not (or not yet) the run folder or weights file it should be."""


@dataclass(frozen=True)
class RunMeta:
    """What a trained model needs to be used without its training config: architecture, classes,
    task and decision threshold, preprocessing, the augmentation TTA must respect, calibration."""

    model: str
    num_outputs: int
    classes: list[str]
    task: str  # "binary" | "multiclass" | "multilabel"
    preprocess: dict[str, Any]  # Preprocess.to_dict()
    model_args: dict[str, Any] = field(default_factory=dict)
    threshold: float = 0.5
    hflip: float = 0.0  # training's flip probability (TTA mirrors only if > 0)
    pad_crop: int = 0  # training's pad-and-crop shift (ten-crop's corner offsets)
    epoch: int | None = None  # the epoch these weights are from
    val: dict[str, float] = field(default_factory=dict)  # their validation scores
    init: str = ""  # the weights training started from ("" = random)
    imgcls_version: str = ""
    test_precision: str = "fp32"  # what the run's test pass ran in: imgcls eval and predict run in it too
    temperature: float = 1.0  # from calibration.json when there is one (not stored in the weights)

    def to_metadata(self) -> dict[str, Any]:
        meta = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "temperature"}
        return {**meta, "imgcls_format": FORMAT}

    @classmethod
    def from_metadata(cls, meta: dict[str, Any], where: str = "weights") -> RunMeta:
        version = meta.get("imgcls_format")
        if version is None:
            raise RunFolderError(
                f"{where} has no imgcls metadata; load plain weights with create_model(..., weights=...)"
            )
        if version not in FORMATS:
            raise RunFolderError(
                f"{where} is imgcls format {version}; this imgcls reads formats {FORMATS}: upgrade imgcls"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in meta.items() if k in known}
        missing = [k for k in ("model", "num_outputs", "classes", "task", "preprocess") if k not in values]
        if missing:
            raise RunFolderError(f"{where}: imgcls metadata without {', '.join(missing)}")
        values["pad_crop"] = int(values.get("pad_crop") or 0)
        values["hflip"] = float(values.get("hflip") or 0.0)
        values["test_precision"] = str(values.get("test_precision") or "fp32")
        if values["test_precision"] not in INFER_PRECISIONS:
            raise RunFolderError(
                f"{where}: test_precision {values['test_precision']!r} is not one of {', '.join(INFER_PRECISIONS)}"
            )
        return cls(**values)

    def with_temperature(self, temperature: float) -> RunMeta:
        return dataclasses.replace(self, temperature=temperature)


def _file(name: str) -> Any:
    """A read-only attribute: the path of ``name`` in the run folder."""
    return property(lambda self: self.root / name)


@dataclass(frozen=True)
class RunFolder:
    root: Path

    # ---- where things are (the docstring above says what each holds) ----------------------------
    config = _file("config.yaml")
    labels = _file("labels.json")
    metrics = _file("metrics.jsonl")
    steps = _file("steps.jsonl")
    checkpoints = _file("checkpoints")
    last = _file("checkpoints/last.pt")
    weights = _file(WEIGHTS)
    test_metrics = _file("test_metrics.json")
    timings = _file("timings.json")
    tensorboard = _file("tensorboard")
    bad_images = _file("bad_images.csv")
    calibration = _file("calibration.json")

    def exported(self, fmt: str) -> Path:
        """Where ``imgcls export`` puts the file of a format (its sidecar is that path + .json)."""
        return self.root / f"model.{fmt}"

    def eval_metrics(self, out: Path | None = None) -> Path:
        return (out or self.root) / "metrics.json"

    def report(self, out: Path | None = None) -> Path:
        return (out or self.root) / "report.html"

    # ---- finding and making one ------------------------------------------------------------------
    @classmethod
    def of(cls, path: str | Path) -> RunFolder:
        """The run folder of ``path``: the folder itself, or the folder holding a ``model.safetensors``."""
        path = Path(path)
        return cls(path if path.is_dir() or path.suffix != ".safetensors" else path.parent)

    @classmethod
    def new(cls, out: str | Path, name: str) -> RunFolder:
        """``out/name``, or ``out/name-2``, ``-3``... if that holds anything already."""
        base, n = Path(out), 1
        folder = base / name
        while folder.exists() and any(folder.iterdir()):
            n += 1
            folder = base / f"{name}-{n}"
        return cls(folder)

    def create(self) -> None:
        self.checkpoints.mkdir(parents=True, exist_ok=True)

    def remove_if_unused(self) -> None:
        """Remove this folder if nothing was written into it (a run that failed before it started), so
        that failed attempts leave no folders behind and later runs are not numbered past them."""
        if self.root.is_dir() and not any(p.is_file() for p in self.root.rglob("*")):
            shutil.rmtree(self.root, ignore_errors=True)

    def is_run(self) -> bool:
        return self.config.is_file()

    def has_checkpoint(self) -> bool:
        return self.last.is_file()

    def clean_temp(self) -> None:
        """Remove what interrupted atomic writes left behind."""
        for folder in (self.root, self.checkpoints):
            if folder.is_dir():
                clean_temp(folder)

    # ---- files -----------------------------------------------------------------------------------
    def read_config(self) -> dict[str, Any]:
        if not self.is_run():
            raise RunFolderError(f"{str(self.root)!r} has no config.yaml (is it a run folder?)")
        return load_yaml(self.config)

    def trained_on(self) -> str | None:
        """The data source the run trained on (``data.source`` of its config.yaml; ``data.data`` in a
        run written before the rename), or None where the folder has no config."""
        if not self.is_run():
            return None
        data = self.read_config().get("data") or {}
        return data.get("source", data.get("data")) or None

    def write_config(self, cfg: Any, origins: dict[str, str] | None = None) -> None:
        """config.yaml: every field of ``cfg``; headed, when ``origins`` ({dotted leaf: where its value
        came from}, ``config.compose``) is given, by which leaves each preset, file and the command
        line set."""
        head = ""
        if origins:
            by: dict[str, list[str]] = {}
            for leaf, where in origins.items():
                by.setdefault(where, []).append(leaf)
            head = (
                "# where the values came from (config.compose: defaults <- preset <- --config <- options):\n"
            )
            head += "".join(f"#   {where}: {', '.join(sorted(leaves))}\n" for where, leaves in by.items())
            head += (
                "#   the rest: imgcls's defaults, with each `auto` decided from the data and this machine\n"
            )
        write_text_atomic(self.config, head + dump_yaml(cfg))

    def write_labels(self, classes: list[str], ids: list[str] | None = None) -> None:
        """The class names in output order; with the dataset's own ids (ImageNet's synsets), an object
        ``{"classes": [...], "ids": [...]}``."""
        body = {"classes": classes, "ids": ids} if ids else classes
        write_text_atomic(self.labels, json.dumps(body, indent=1) + "\n")

    def append(self, path: Path, records: list[dict[str, Any]], sync: bool = False) -> None:
        """Append JSON lines to ``metrics`` / ``steps`` (fsynced when ``sync``)."""
        if not records:
            return
        with open(path, "a") as f:
            f.write("".join(json.dumps(r) + "\n" for r in records))
            if sync:
                f.flush()
                os.fsync(f.fileno())

    def read_lines(self, path: Path) -> Iterator[dict[str, Any]]:
        if path.is_file():
            for line in path.read_text().splitlines():
                if line.strip():
                    yield json.loads(line)

    def keep_lines(self, path: Path, keep: Callable[[dict[str, Any]], bool]) -> None:
        """Drop the lines a resumed run will write again (those after its checkpoint)."""
        if path.is_file():
            kept = [r for r in self.read_lines(path) if keep(r)]
            write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))

    def write_json(self, path: Path, obj: Any) -> None:
        write_text_atomic(path, json.dumps(obj, indent=1) + "\n")

    def write_weights(self, state: dict[str, torch.Tensor], meta: RunMeta) -> None:
        save_safetensors(state, self.weights, meta.to_metadata())

    def read_weights(self, path: str | Path | None = None) -> tuple[dict[str, torch.Tensor], RunMeta]:
        """(state dict, RunMeta with the calibration's temperature) of this run's best weights (or of
        a weights file ``path`` of imgcls format)."""
        weights = Path(path) if path is not None else self.weights
        if not weights.is_file():
            hint = (
                " (the run has no best weights yet: it stopped before its first epoch ended)"
                if self.is_run()
                else ""
            )
            raise RunFolderError(f"no {WEIGHTS} in {str(self.root)!r}{hint}")
        state, raw = load_safetensors(weights)
        meta = RunMeta.from_metadata(raw, repr(str(weights)))
        temperature = self.read_calibration()
        return state, meta.with_temperature(temperature) if temperature is not None else meta

    def read_calibration(self) -> float | None:
        if not self.calibration.is_file():
            return None
        return float(json.loads(self.calibration.read_text())["temperature"])

    def write_calibration(self, temperature: float, fitted_on: str) -> None:
        self.write_json(self.calibration, {"temperature": temperature, "fitted_on": fitted_on})
