"""The weight catalogue: published ImageNet weights of the zoo's models, as data.

``catalogue.json`` (written by ``tools/make_weights_catalogue.py`` from torchvision's and timm's own
source) holds one entry per weight: where it comes from (torchvision's download URL with the SHA-256
prefix its file name carries, or a Hugging Face Hub repo and file for timm's), the weight's own
preprocessing, the data it was trained on, its published top-1 and its licence. Names resolve as:

- ``resnet50.tv2_in1k``: a tag, exactly;
- ``resnet50``: the model's default weight (torchvision's ``DEFAULT``; else the best ImageNet-1K top-1);
- ``torchvision:resnet50`` / ``torchvision:resnet50.tv_in1k``: torchvision's weights only;
- ``timm:vit_small_patch16_224.augreg_in21k_ft_in1k``: timm's, by timm's own name (``timm:MODEL`` takes
  timm's default for it), which is also our tag except where our model name differs from timm's
  (``legacy_xception`` is our ``xception``, ``mobilenetv1_100`` our ``mobilenet_v1``).
"""

from __future__ import annotations

import fnmatch
import json
import os
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ImgclsError, did_you_mean

SOURCES = ("torchvision", "timm")
ENV = "IMGCLS_CATALOGUE"
LABEL_FILES = {"imagenet-1k": "imagenet_1k.txt", "imagenet-21k": "imagenet_21k.txt"}


class UnknownWeightsError(ImgclsError, KeyError):
    """A weight name that is not in the catalogue."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class WeightPreprocess:
    """The eval preprocessing the weight was measured with: resize the shorter side to ``resize``,
    centre-crop ``size``."""

    size: int
    resize: int
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


@dataclass(frozen=True)
class WeightEntry:
    tag: str  # MODEL.TAG, e.g. resnet50.tv2_in1k
    model: str  # the zoo model it loads into
    default: bool
    source: str  # torchvision | timm
    url: str | None  # a direct download (torchvision's, and timm's few release files)
    sha256_prefix: str | None  # what the file name promises, checked before use
    hf_repo: str | None  # a Hugging Face Hub repo (timm's), which verifies its own files
    hf_file: str | None
    num_classes: int
    labels: str | None  # imagenet-1k | imagenet-21k
    preprocess: WeightPreprocess
    dataset: str
    top1: float | None
    top5: float | None
    params: int | None
    file_mb: float | None
    license: str
    recipe: str | None
    timm_name: str | None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WeightEntry:
        pre = d["preprocess"]
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__ and k != "preprocess"}
        d.setdefault("timm_name", None)
        return cls(**d, preprocess=WeightPreprocess(pre["size"], pre["resize"], pre["interpolation"],
                                                    tuple(pre["mean"]), tuple(pre["std"])))  # fmt: skip

    @property
    def filename(self) -> str:
        """The name of the downloaded file (torch hub's: the URL's last part)."""
        return self.url.rsplit("/", 1)[-1] if self.url else f"{self.tag}.safetensors"

    @property
    def download_url(self) -> str:
        if self.url:
            return self.url
        return f"https://huggingface.co/{self.hf_repo}/resolve/main/{self.hf_file}"


def catalogue() -> tuple[WeightEntry, ...]:
    """Every entry, sorted by model then default first: the shipped catalogue, with the entries of
    ``$IMGCLS_CATALOGUE`` (a JSON list in the same format: a mirror, or private weights) replacing
    those of the same tag and added to the rest."""
    return _load(os.environ.get(ENV, ""))


@lru_cache(maxsize=4)
def _load(extra: str) -> tuple[WeightEntry, ...]:
    text = resources.files(__package__).joinpath("catalogue.json").read_text()
    rows = {d["tag"]: d for d in json.loads(text)}
    if extra:
        try:
            added = json.loads(Path(extra).read_text())
            for d in added:
                rows[d["tag"]] = d
            out = [WeightEntry.from_dict(d) for d in rows.values()]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ImgclsError(
                f"${ENV}={extra!r}: not a readable weight catalogue ({type(e).__name__}: {e})"
            ) from None
    else:
        out = [WeightEntry.from_dict(d) for d in rows.values()]
    if extra:  # an added entry that says it is the default takes over from the shipped one
        defaults = {d["model"] for d in added if d.get("default")}
        out = [e if e.model not in defaults or e.tag in {d["tag"] for d in added} else replace(e, default=False)
               for e in out]  # fmt: skip
    return tuple(sorted(out, key=lambda e: (e.model, not e.default, e.tag)))


def entries(pattern: str = "*") -> list[WeightEntry]:
    """Entries whose tag matches a shell pattern (``resnet*``, ``*in21k*``); a bare word matches as a substring."""
    if not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"
    return [e for e in catalogue() if fnmatch.fnmatch(e.tag, pattern)]


def is_weight_name(spec: str, model: str | None = None) -> bool:
    """Whether ``spec`` names catalogue weights rather than a file: ``SOURCE:...``, a tag, a model
    name, or (with ``model``) a bare tag of that model's (``tv2_in1k``)."""
    source, _, name = spec.partition(":")
    if name and source in SOURCES:
        return True
    tags = {e.tag for e in catalogue()} | {e.model for e in catalogue()}
    return spec in tags or (model is not None and f"{model}.{spec}" in tags)


def find(spec: str, model: str | None = None) -> WeightEntry:
    """The entry ``spec`` names (see the module's doc); with ``model``, a bare tag (``tv2_in1k``)
    is taken as that model's, and an entry for another model is refused."""
    source, _, name = spec.partition(":")
    if not name or source not in SOURCES:
        source, name = "", spec
    pool = [e for e in catalogue() if not source or e.source == source]
    if model and "." not in name and name != model and not any(e.model == name for e in pool):
        name = f"{model}.{name}"
    hit = next((e for e in pool if name in (e.tag, e.timm_name)), None)
    if hit is None:
        group = [e for e in pool if name in (e.model, (e.timm_name or "").split(".")[0])]
        hit = next((e for e in group if e.default), group[0] if group else None)
    if hit is None:
        where = f"{source}'s weights" if source else "the weight catalogue"
        names = [e.tag for e in pool] + sorted({e.model for e in pool})
        raise UnknownWeightsError(
            f"no weights {spec!r} in {where}{did_you_mean(name, names)} (imgcls weights list shows them)"
        )
    if model and hit.model != model:
        raise ImgclsError(f"weights {hit.tag!r} are for {hit.model}, not {model}")
    return hit


def labels(entry: WeightEntry) -> list[str]:
    """The class names of the weight's head, in output order (ImageNet-1k's, or 21k's)."""
    if entry.labels not in LABEL_FILES:
        return [f"class_{i}" for i in range(entry.num_classes)]
    text = resources.files(__package__).joinpath(LABEL_FILES[entry.labels]).read_text()
    names = text.splitlines()
    if len(names) != entry.num_classes:
        raise ImgclsError(f"{entry.tag}: {len(names)} {entry.labels} labels for {entry.num_classes} outputs")
    return names
