"""``imgcls export RUN --format onnx|pt2``: a trained model as a file other programs run.

- **ONNX** through torch's current exporter (``torch.onnx.export(..., dynamo=True)``, onnxscript),
  run by onnxruntime; **pt2** through ``torch.export`` (an ``ExportedProgram`` that
  ``torch.export.load`` runs; TorchScript is deprecated upstream and not used).
- The file computes the class probabilities (softmax for multi-class, sigmoid for binary and
  multi-label, binary as two columns, the run's temperature applied; ``--logits`` for raw logits)
  from a normalised float batch (N, C, H, W).
- A sidecar JSON beside it (``model.onnx.json``) says everything needed to use the file without
  imgcls: classes, task, threshold, temperature, the input (size, channels, colour space, resize
  side, crop, interpolation, mean/std), the output and whether the batch is dynamic.
- Before reporting success the exported file is run (onnxruntime / ``torch.export.load``) on real
  images — the run's own evaluation images, or ``--check-images`` — at batch 1 and, with
  ``--dynamic-batch``, at batch 7, and compared with PyTorch; the largest difference is reported.

A pt2 file unpickles its weights with code execution allowed (``torch.export.load``): load pt2 files
you made, never ones from elsewhere. ``imgcls serve`` therefore serves run folders (safetensors) and
ONNX files, not pt2.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import ConfigError, ImgclsError
from .evaluation import split_items
from .predict import Predictor, load
from .run import RunFolder
from .version import __version__

FORMATS = ("onnx", "pt2")
TOLERANCE = 1e-4  # fp32: what "the same outputs" means for an exported file


class ExportError(ImgclsError, RuntimeError):
    """A model that does not export (the message names the operator), or an export that does not
    compute what the model computes."""


class Exportable(nn.Module):
    """The model as it is exported: normalised images (N, C, H, W) -> probabilities (or logits)."""

    def __init__(
        self, model: nn.Module, kind: str = "multiclass", temperature: float = 1.0, logits: bool = False
    ) -> None:
        super().__init__()
        self.model, self.kind, self.logits, self.temperature = model, kind, logits, float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.model.forward_head(self.model.forward_features(x)) / self.temperature  # no input checks
        if self.logits:
            return z
        if self.kind == "multiclass":
            return z.softmax(1)
        p = torch.sigmoid(z)
        return torch.cat([1 - p, p], 1) if self.kind == "binary" else p


@dataclass
class ExportResult:
    path: Path
    sidecar: Path
    format: str
    max_diff: float  # largest |exported - PyTorch| over the checked images and batch sizes
    images: int  # how many real images were compared
    batches: tuple[int, ...]  # the batch sizes run


def sidecar_for(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def export(
    run: str | Path, fmt: str = "onnx", out: str | Path | None = None, *, dynamic_batch: bool = False,
    opset: int | None = None, logits: bool = False, check_images: list[str] | None = None,
) -> ExportResult:  # fmt: skip
    """Export the run's best weights as ``fmt``, write the sidecar, and check the file on real images."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    folder = RunFolder.of(run)
    clf = load(run)
    path = Path(out) if out else folder.exported(fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = Exportable(clf.model, clf.task.kind, clf.temperature, logits).eval()
    images = _check_batch(clf, folder, check_images)
    name = clf.meta.model if clf.meta else "model"
    diff, sizes = export_module(module, images, fmt, path, dynamic_batch, opset, name)
    sidecar = sidecar_for(path)
    sidecar.write_text(
        json.dumps(describe(clf, path, fmt, dynamic_batch, opset, logits, diff), indent=1) + "\n"
    )
    return ExportResult(path, sidecar, fmt, diff, len(images), sizes)


def export_module(
    module: Exportable, images: torch.Tensor, fmt: str, path: Path, dynamic_batch: bool = False,
    opset: int | None = None, name: str = "model",
) -> tuple[float, tuple[int, ...]]:  # fmt: skip
    """Write ``module`` as ``fmt`` to ``path``, run the file on ``images`` (batch 1, and 7 when the batch
    is dynamic) and return the largest difference from PyTorch and the batch sizes run. ExportError
    with one line naming the operator when the exporter fails, or when the file computes otherwise."""
    example = images[:2] if dynamic_batch else images[:1]
    batch = torch.export.Dim("batch", min=1, max=4096) if dynamic_batch else None
    shapes = ({0: batch},) if batch is not None else None
    try:
        with quiet():
            if fmt == "onnx":
                program = torch.onnx.export(module, (example,), dynamo=True, dynamic_shapes=shapes, opset_version=opset,
                                            input_names=["images"], output_names=["logits" if module.logits else "probs"],
                                            verbose=False)  # fmt: skip
                program.save(str(path))
            else:
                torch.export.save(torch.export.export(module, (example,), dynamic_shapes=shapes), str(path))
    except Exception as e:  # the exporters raise many kinds; one line naming the operator is what helps
        raise ExportError(f"{name} does not export to {fmt}: {reason(e)}") from None
    run_file = file_runner(fmt, path)
    sizes = (1, 7) if dynamic_batch else (1,)
    diff = 0.0
    with torch.no_grad():
        for n in sizes:
            x = images[torch.arange(n) % len(images)]
            diff = max(diff, float(np.abs(run_file(x) - module(x).numpy()).max()))
    if not diff <= TOLERANCE:
        path.unlink(missing_ok=True)
        raise ExportError(
            f"{name}: the {fmt} file computes outputs {diff:.3g} away from PyTorch's (more than {TOLERANCE:g})"
        )
    return diff, sizes


def check_family(name: str, fmt: str, folder: str | Path, **overrides: Any) -> str:
    """'yes (max diff D)' or 'no: REASON' for a zoo model built with random weights at its smallest
    input (>= 32 px), exported with a dynamic batch and checked at batch 1 and 7 (the export table)."""
    from .models import build_model
    from .models.base import min_input_size

    torch.manual_seed(0)
    model = build_model(name, num_classes=10, **overrides).eval()
    size = max(min_input_size(model), 32)
    images = torch.randn(8, model.in_chans, size, size)
    try:
        diff, _ = export_module(
            Exportable(model), images, fmt, Path(folder) / f"{name}.{fmt}", True, name=name
        )
    except ExportError as e:
        return "no: " + str(e).split(": ", 1)[-1]
    return f"yes (max diff {diff:.0e})"


def describe(clf: Predictor, path: Path, fmt: str, dynamic: bool, opset: int | None, logits: bool,
             diff: float) -> dict[str, Any]:  # fmt: skip
    """The sidecar: enough to use the file without imgcls."""
    pre = clf.preprocess
    return {
        "file": path.name, "format": fmt, "model": clf.meta.model if clf.meta else None, "task": clf.task.kind,
        "classes": list(clf.classes), "threshold": clf.task.threshold, "temperature": clf.temperature,
        "input": {"name": "images", "layout": "NCHW", "dtype": "float32", "size": pre.size, "channels": pre.channels,
                  "color_space": pre.color_space, "resize": pre.side, "crop": pre.size,
                  "pad_small": pre.pad_small,  # images that fit and fill 3/4 of the input: centred on black
                  "crop_pct": pre.crop_pct, "interpolation": pre.interpolation, "mean": list(pre.mean),
                  "std": list(pre.std), "dynamic_batch": dynamic},
        "output": {"name": "logits" if logits else "probs",
                   "meaning": "logits / temperature" if logits else
                   ("softmax" if clf.task.kind == "multiclass" else "sigmoid per class" if clf.task.kind == "multilabel"
                    else "(1 - p, p) of the second class")},
        "preprocess": pre.to_dict(),  # imgcls's own description (imgcls serve reads it)
        "opset": opset, "max_diff_vs_pytorch": diff, "imgcls_version": __version__,
    }  # fmt: skip


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The exporters' progress lines and warnings (about optional packages) kept off the user's screen."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def reason(e: BaseException) -> str:
    """One line out of an exporter's exception: the operator it names, and what went wrong."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))  # the exporter colours its text
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "## Exception summary" in lines:  # torch.onnx's report: the cause follows this heading
        lines = lines[lines.index("## Exception summary") + 1 :]
    first = re.sub(
        r"^<class '([\w.]+)'>:", lambda m: m.group(1).rsplit(".", 1)[-1] + ":", lines[0] if lines else ""
    )
    op = re.search(r"(aten[.:]{1,2}[A-Za-z_0-9.]+|prim[.:]{1,2}[A-Za-z_0-9.]+)", text)
    first = (first or type(e).__name__)[:240]
    return f"operator {op.group(1)}: {first}" if op else f"{type(e).__name__}: {first}"


def file_runner(fmt: str, path: Path):  # type: ignore[no-untyped-def]
    """A function running the exported file on a float batch, returning numpy outputs."""
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x.numpy()})[0]
    program = torch.export.load(str(path)).module()  # our own file, just written
    return lambda x: program(x).detach().numpy()


def _check_batch(clf: Predictor, folder: RunFolder, paths: list[str] | None) -> torch.Tensor:
    """Up to 8 real images, normalised as the model wants them: the given files, or the run's own
    evaluation images."""
    items: list[Any] = list(paths or [])
    if not items:
        data = folder.trained_on()
        if data:
            try:
                _, items, _, _ = split_items(data, None, folder.root, clf.classes)
            except ImgclsError:
                items = []
    if not items:
        raise ConfigError(
            f"no images to check the export on: the run's data ({folder.root}) is not where it was; "
            "give --check-images FILE_OR_FOLDER"
        )
    views = [clf._views(item, "none") for item in items[:8]]
    return clf.preprocess.normalizer(torch.cat(views)).float()
