"""``imgcls.load(run_or_weights)`` and predictions: a trained model with its classes, task and
preprocessing, from a run folder or a ``model.safetensors`` written by training.

    clf = imgcls.load("runs/lenet5")
    clf.predict("digit.png")                 # Prediction: label, probability, top-k
    clf.predict(["a.jpg", "b.jpg"], topk=3)  # a list, batched
    clf.predict_proba(images)                # (N, C) probabilities as a tensor

Images go through the run's ``Preprocess`` — the one decode path and eval geometry the loaders
use — so a prediction equals what evaluation computed for the same file, bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .amp import autocast, infer_precision
from .data.pipeline import Preprocess
from .data.transforms import to_uint8_tensor
from .engine.evaluate import tta_logits
from .engine.precision import is_conv_net
from .errors import ConfigError
from .run import RunMeta
from .tasks import Task
from .tta import BATCH_VIEWS, TTA

ImageInput = str | Path | bytes | Image.Image | np.ndarray | torch.Tensor


@dataclass
class Prediction:
    """One image's outputs: every class's probability, read the task's way."""

    source: str
    classes: list[str]
    probs: list[float]
    task: str
    threshold: float = 0.5
    topk: int = 5
    error: str | None = None  # the reason a file could not be read (then probs is empty)

    @property
    def label(self) -> str | None:
        """The predicted class (multi-label: the most probable label, even under the threshold)."""
        if not self.probs:
            return None
        if self.task == "binary":
            return self.classes[int(self.probs[1] >= self.threshold)]
        return self.classes[int(np.argmax(self.probs))]

    @property
    def probability(self) -> float | None:
        return self.probs[self.classes.index(self.label)] if self.label is not None else None

    @property
    def labels(self) -> list[str]:
        """Multi-label: every label at or above the threshold; otherwise the single label."""
        if self.task == "multilabel":
            return [c for c, p in zip(self.classes, self.probs) if p >= self.threshold]
        return [self.label] if self.label is not None else []

    def top(self, k: int | None = None) -> list[tuple[str, float]]:
        order = np.argsort(self.probs)[::-1][: k or self.topk]
        return [(self.classes[i], float(self.probs[i])) for i in order]

    def as_dict(self) -> dict[str, Any]:
        if self.error:
            return {"source": self.source, "error": self.error}
        out: dict[str, Any] = {"source": self.source, "label": self.label, "probability": self.probability,
                               "top": [{"class": c, "probability": p} for c, p in self.top()]}  # fmt: skip
        if self.task == "multilabel":
            out["labels"] = self.labels
        return out

    def __str__(self) -> str:
        if self.error:
            return f"{self.source}: {self.error}"
        return "  ".join(f"{c} {p:.2f}" for c, p in self.top())


@dataclass
class Predictor:
    model: torch.nn.Module
    classes: list[str]
    task: Task
    preprocess: Preprocess
    meta: RunMeta | None = None  # what the run folder says of the model
    temperature: float = 1.0
    hflip_ok: bool = True  # mirrored views in TTA only for models trained with flips
    pad_crop: int | None = None  # the shifts pad-and-crop training used: ten-crop's corner offsets
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "fp32"  # autocast: "bf16" where the run tested in bf16-if-native and it is native here

    def __post_init__(self) -> None:
        # a conv net runs in channels_last, as a training run's own test pass does (the same figure)
        self.memory_format = torch.channels_last if is_conv_net(self.model) else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)

    # ---- inputs -------------------------------------------------------------------------------
    def _views(self, source: ImageInput, tta: str) -> torch.Tensor:
        """(V, C, H, W) uint8 views of one image for the TTA mode (V = 1 without TTA)."""
        pre = self.preprocess
        if isinstance(source, torch.Tensor):
            if source.dtype != torch.uint8:
                raise ConfigError(
                    "float tensors are model inputs already: call predict_proba_tensor(x) with them"
                )
            source = (
                source.permute(1, 2, 0).numpy()
                if source.ndim == 3 and source.shape[0] in (1, 3, 4)
                else source.numpy()
            )
            source = source[..., 0] if source.ndim == 3 and source.shape[-1] == 1 else source
        img = pre.load(source)
        if tta in BATCH_VIEWS:  # one view; the batch's views are made from it (``_probs``)
            return to_uint8_tensor(pre.geometry(img))[None]
        if tta == "ten_crop":
            return ten_crop(img, pre, self.hflip_ok, self.pad_crop)
        if tta == "multiscale":
            return torch.cat([to_uint8_tensor(pre.geometry(img.resize(_scaled(img.size, s), Image.Resampling.BILINEAR)))[None]
                              for s in (0.875, 1.0, 1.15)])  # fmt: skip
        raise ConfigError(f"tta must be one of {', '.join(TTA)}, got {tta!r}")

    @torch.no_grad()
    def logits(self, x: torch.Tensor, tta: str = "none") -> torch.Tensor:
        """Model outputs for a normalised float batch (N, C, H, W), averaged over the batch views ``tta``
        names (mirrored ones only for a model trained with mirrors)."""
        self.model.eval()
        x = x.to(self.device, memory_format=self.memory_format) if x.ndim == 4 else x.to(self.device)
        with autocast(self.device, self.precision):
            logits = tta_logits(self.model, x, tta, self.hflip_ok)
        return logits.float().cpu() / self.temperature

    def _probs(self, views: list[torch.Tensor], tta: str) -> list[torch.Tensor]:
        """Each image's probabilities from its ``_views``: batch views average the logits, image views
        (ten_crop, multiscale) the probabilities."""
        x = self.preprocess.normalizer(torch.cat(views))
        if tta in BATCH_VIEWS:
            return list(self.task.probs(self.logits(x, tta)))
        return [p.mean(0) for p in self.task.probs(self.logits(x)).split([len(v) for v in views])]

    @torch.no_grad()
    def predict_proba(
        self, images: Sequence[ImageInput] | ImageInput, tta: str = "none", batch_size: int = 64
    ) -> torch.Tensor:
        """(N, C) class probabilities (binary: both classes); TTA averages the views' probabilities."""
        items = _as_list(images)
        probs = []
        for start in range(0, len(items), batch_size):
            probs += self._probs([self._views(s, tta) for s in items[start : start + batch_size]], tta)
        return torch.stack(probs) if probs else torch.zeros(0, len(self.classes))

    def predict(
        self, images: Sequence[ImageInput] | ImageInput, topk: int = 5, tta: str = "none", batch_size: int = 64,
        skip_bad: bool = False,
    ) -> Prediction | list[Prediction]:  # fmt: skip
        """Predictions for one image (a Prediction) or several (a list). ``skip_bad``: a file that cannot
        be decoded gives a Prediction with ``error`` set instead of stopping the batch."""
        from .data.decode import BadImageError

        single = not isinstance(images, (list, tuple)) and not _is_batch(images)
        items = _as_list(images)
        out: list[Prediction] = []
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            good, errors = [], {}
            for i, s in enumerate(chunk):
                try:
                    good.append((i, self._views(s, tta)))
                except BadImageError as e:
                    if not skip_bad:
                        raise
                    errors[i] = e.reason
            probs: dict[int, list[float]] = {}
            if good:
                p = self._probs([v for _, v in good], tta)
                probs = {i: chunk_p.tolist() for (i, _), chunk_p in zip(good, p)}
            for i, s in enumerate(chunk):
                out.append(Prediction(_name(s, start + i), self.classes, probs.get(i, []), self.task.kind,
                                      self.task.threshold, topk, errors.get(i)))  # fmt: skip
        return out[0] if single else out


def ten_crop(img: Image.Image, pre: Preprocess, flips: bool = True, pad: int | None = None) -> torch.Tensor:
    """The four corner crops and the centre crop of the resized image, and their mirrors (ResNet
    paper's 10-crop testing; without mirrors for models trained without flips, such as digits). An
    image already at the input size is first padded by half the training's pad-and-crop shift
    (default 1/16 of the side): a corner crop moves the image along both axes at once, so half keeps
    the displacement within what training showed (on MNIST, half: 98.82 % vs 98.71 % single-crop;
    the full shift: 98.69 %)."""
    size = pre.size
    if pre.fits(img) or min(img.size) <= size:
        img = pre.geometry(img)
        pad = max(1, (pad or max(1, size // 8)) // 2)
        canvas = Image.new(
            img.mode, (img.size[0] + 2 * pad, img.size[1] + 2 * pad), 0 if img.mode == "L" else (0, 0, 0)
        )
        canvas.paste(img, (pad, pad))
        img = canvas
    else:
        from .data.transforms import Resize

        img = Resize(pre.side_for(size), pre.interpolation)(img)
    w, h = img.size
    boxes = [(0, 0), (w - size, 0), (0, h - size), (w - size, h - size), ((w - size) // 2, (h - size) // 2)]
    crops = [to_uint8_tensor(img.crop((x, y, x + size, y + size))) for x, y in boxes]
    views = torch.stack(crops)
    return torch.cat([views, views.flip(-1)]) if flips else views


def _scaled(size: tuple[int, int], s: float) -> tuple[int, int]:
    return max(1, round(size[0] * s)), max(1, round(size[1] * s))


def _is_batch(x: Any) -> bool:
    """numpy: (N, H, W, C) or (N, H, W) gray; tensors: (N, C, H, W) or (N, H, W). A 3-D array whose
    channel axis (numpy's last, torch's first) is 1, 3 or 4 is one image."""
    if isinstance(x, np.ndarray):
        return x.ndim == 4 or (x.ndim == 3 and x.shape[-1] not in (1, 3, 4))
    if isinstance(x, torch.Tensor):
        return x.ndim == 4 or (x.ndim == 3 and x.shape[0] not in (1, 3, 4))
    return False


def _as_list(images: Any) -> list[Any]:
    if isinstance(images, (list, tuple)):
        return list(images)
    if _is_batch(images):
        return list(images)
    return [images]


def _name(source: Any, i: int) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    return f"<{type(source).__name__} {i}>"


def load(path: str | Path, device: str | torch.device = "cpu", precision: str | None = None) -> Predictor:
    """A trained model from a run folder (its ``model.safetensors``) or from the weights file itself;
    or a pretrained one by catalogue name (``resnet50``, ``resnet50.tv_in1k``, ``timm:TAG``) with its
    classes (ImageNet's) and its own preprocessing. ``precision`` (``amp.INFER_PRECISIONS``) is what its
    forward passes run in; None: what the run's own test pass ran in (its weights say; fp32 for a
    pretrained model)."""
    from .pretrained import is_weight_name
    from .run import RunFolder
    from .transfer import create_model

    if precision is not None:
        infer_precision(precision, torch.device("cpu"))  # a name that is not known is refused up front
    if not Path(path).exists() and is_weight_name(str(path)):
        clf = _load_pretrained(str(path), torch.device(device))
        clf.precision = infer_precision(precision or "fp32", clf.device)
        return clf
    path = Path(path)
    run = RunFolder.of(path)
    state, meta = run.read_weights(path if path.is_file() else None)
    pre = Preprocess.from_dict(meta.preprocess)
    model = create_model(meta.model, num_classes=meta.num_outputs, in_chans=pre.channels, **meta.model_args)
    model.load_state_dict(state)
    device = torch.device(device)
    model.to(device).eval()
    task = Task(meta.task, len(meta.classes), threshold=float(meta.threshold))
    return Predictor(model, list(meta.classes), task, pre, meta, meta.temperature, meta.hflip > 0,
                     meta.pad_crop or None, device, infer_precision(precision or meta.test_precision, device))  # fmt: skip


def _load_pretrained(spec: str, device: torch.device) -> Predictor:
    from .errors import ImgclsError
    from .pretrained import find, labels, preprocess_of
    from .transfer import create_model

    entry = find(spec)
    if not entry.num_classes:
        raise ImgclsError(
            f"{entry.tag} has no classifier head (backbone weights): fine-tune it with --init {entry.tag}"
        )
    pre = preprocess_of(entry)
    classes = labels(entry)
    model = create_model(entry.model, pretrained=entry.tag)
    model.to(device).eval()
    meta = RunMeta(
        entry.model, entry.num_classes, classes, "multiclass", pre.to_dict(), hflip=0.5, init=entry.tag
    )
    return Predictor(model, classes, Task("multiclass", len(classes)), pre, meta, device=device)


def to_csv(predictions: Sequence[Prediction], topk: int = 5) -> str:
    """Predictions as CSV: file, label, probability, then the top-k classes and probabilities, and an
    error column (empty when the file decoded). ``imgcls predict --format csv`` prints exactly this."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
            "file",
            "label",
            "probability",
            *[f"{kind}_{i + 1}" for i in range(topk) for kind in ("class", "prob")],
            "labels",
            "error",
        ]
    )
    for p in predictions:
        if p.error:
            w.writerow([p.source, "", "", *[""] * (2 * topk), "", p.error])
            continue
        top = [x for c, prob in p.top(topk) for x in (c, f"{prob:.6f}")]
        top += [""] * (2 * topk - len(top))
        w.writerow([p.source, p.label, f"{p.probability:.6f}", *top, " ".join(p.labels), ""])
    return buf.getvalue()
