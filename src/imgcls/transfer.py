"""Transfer learning: pretrained weights in, frozen or fine-tuned, through the one classifier interface.

``load_pretrained(model, path)`` takes our run folders and ``model.safetensors``, catalogue names
(``resnet50.tv2_in1k``, ``torchvision:resnet50``, ``timm:TAG``: fetched into the caches torchvision and
timm use, see ``imgcls.pretrained``), and torchvision / timm state dicts (``.pth``, ``.pt``, ``.bin``, ``.safetensors``; bare, or wrapped in ``state_dict`` /
``model`` / ``module.`` / ``_orig_mod.``). Keys map onto ours as they are (the families built in the
reference layouts) or through an explicit converter (torchvision's ViT). Then:
- a classifier of another size (``model.head_layers``) is left out and stays freshly initialised;
- a stem of another input-channel count is adapted: to 1 channel by summing the RGB filters (a gray
  image x gives the response the RGB model had to (x, x, x)); to C > 3 by repeating them and scaling
  by 3 / C, as timm does (a constant image gives the same response when C is a multiple of 3);
- learned position embeddings of another grid (a ViT at another resolution) are resampled;
- anything else that does not fit is an error listing the missing / unexpected keys.
Pickled files load with ``weights_only=True``: a file that would run code is refused, unrun.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import models
from .errors import ConfigError, ImgclsError
from .models.base import Classifier
from .run import RunFolder, RunMeta

WRAPPERS = ("state_dict", "model", "model_state", "model_state_dict", "net", "module")
PREFIXES = ("module.", "_orig_mod.", "model.")


class WeightsMismatchError(ImgclsError, ValueError):
    """Weights that do not fit the model beyond what can be adapted."""


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], RunMeta | None]:
    """(state dict, its RunMeta when imgcls wrote it) from a run folder or a weights file of any common kind."""
    from .fileio import load_safe, load_safetensors

    path = Path(path)
    if path.is_dir():
        run = RunFolder(path)
        if not run.weights.is_file():
            raise ImgclsError(f"{str(path)!r} has no {run.weights.name} (is it a finished run folder?)")
        path = run.weights
    if not path.is_file():
        raise ImgclsError(f"weights {str(path)!r} do not exist")
    meta: RunMeta | None = None
    if path.suffix == ".safetensors":
        state, raw = load_safetensors(path)
        if "imgcls_format" in raw:
            meta = RunMeta.from_metadata(raw, repr(str(path)))
    else:
        obj = load_safe(path)
        for _ in range(3):  # {"state_dict": {...}}, {"model": {"state_dict": ...}}, ...
            if isinstance(obj, dict) and not _is_state(obj):
                inner = next((obj[k] for k in WRAPPERS if k in obj and isinstance(obj[k], dict)), None)
                if inner is None:
                    break
                obj = inner
        if not isinstance(obj, dict) or not _is_state(obj):
            raise WeightsMismatchError(
                f"{str(path)!r} holds no state dict (keys: {list(obj)[:8] if isinstance(obj, dict) else type(obj).__name__})"
            )
        state = obj
    for prefix in PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state), meta


def _is_state(d: dict) -> bool:
    return (
        bool(d)
        and all(isinstance(k, str) for k in d)
        and all(isinstance(v, torch.Tensor) for v in d.values())
    )


def convert_state(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Explicit converters for checkpoints of another layout than ours."""
    if any(k.startswith("encoder.layers.encoder_layer_") for k in state):  # torchvision's ViT
        from .models.vit import convert_torchvision_vit

        return convert_torchvision_vit(state)
    return state


def create_model(
    name: str,
    num_classes: int | None = None,
    in_chans: int | None = None,
    device: torch.device | str | None = None,
    weights: str | Path | None = None,
    pretrained: bool | str = False,
    **overrides: Any,
) -> Classifier:
    """``imgcls.create_model``: a registered model (``imgcls.models.build_model``: every config field
    an override), with ``weights`` loaded when given (a run folder, our model.safetensors, a
    torchvision / timm state dict, or a catalogue name): a head of another size is re-initialised, the
    stem adapted to ``in_chans``, ViT position embeddings resampled (``load_pretrained``).
    ``pretrained=True`` takes the model's default catalogue weights, ``pretrained="tv_in1k"`` (or a
    full tag) those; the head then has the weights' classes unless ``num_classes`` says otherwise.
    The weights' own preprocessing: ``imgcls.pretrained.preprocess_of(imgcls.pretrained.find(TAG))``."""
    if pretrained and weights is not None:
        raise ConfigError("create_model: give weights= or pretrained=, not both")
    if pretrained:
        from .pretrained import fetch, find

        entry = find(name if pretrained is True else str(pretrained), model=name)
        if num_classes is None and entry.num_classes:
            num_classes = entry.num_classes
        weights = fetch(entry)
    model = models.build_model(name, num_classes, in_chans, device, **overrides)
    if weights is not None:
        load_pretrained(model, weights)
    return model


def load_pretrained(model: nn.Module, path: str | Path, verbose: bool = True) -> list[str]:
    """Load ``path`` (a file, a run folder or a catalogue name) into ``model`` (adapting head, stem
    channels and position embeddings); returns the one-line notes of what was adapted."""
    from .pretrained import resolve_weights

    file, _ = resolve_weights(
        path, model=getattr(getattr(model, "info", None), "name", None), progress=verbose
    )
    state, _ = read_state_dict(file)
    notes = load_state(model, state, str(path))
    if verbose:
        for note in notes:
            print(f"imgcls: {note}")
    return notes


def load_state(model: nn.Module, state: dict[str, torch.Tensor], name: str) -> list[str]:
    """``state`` (any layout ``convert_state`` knows) into ``model``, adapted as ``load_pretrained`` says;
    ``name`` is what errors call it. Returns the notes of what was adapted."""
    path = name
    state = convert_state(model, state)
    own = model.state_dict()
    heads = tuple(getattr(model, "head_layers", ()) or ())
    stem = getattr(model, "stem_conv", "")
    notes: list[str] = []
    out: dict[str, torch.Tensor] = {}
    mismatched: list[str] = []
    for key, value in state.items():
        if key not in own:
            continue
        target = own[key]
        if value.shape == target.shape:
            out[key] = value
        elif heads and key.startswith(tuple(h + "." for h in heads)):
            if key.endswith("weight"):
                notes.append(
                    f"{key.rsplit('.', 1)[0]}: {value.shape[0]} outputs in the weights, {target.shape[0]} here: re-initialised"
                )
        elif (
            stem
            and key == f"{stem}.weight"
            and value.ndim == 4
            and value.shape[0] == target.shape[0]
            and value.shape[2:] == target.shape[2:]
        ):
            out[key] = adapt_channels(value, target.shape[1])
            notes.append(
                f"{stem}: {value.shape[1]} input channels in the weights, {target.shape[1]} here: filters adapted"
            )
        elif key.endswith("pos_embed") and value.ndim == 3 and value.shape[-1] == target.shape[-1]:
            out[key] = _resample(model, value, target)
            notes.append(f"{key}: {value.shape[1]} positions resampled to {target.shape[1]}")
        else:
            mismatched.append(f"{key} {tuple(value.shape)} vs {tuple(target.shape)}")
    unexpected = [k for k in state if k not in own]
    missing = [
        k for k in own if k not in state and not (heads and k.startswith(tuple(h + "." for h in heads)))
    ]
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if mismatched or unexpected or missing:
        parts = []
        if missing:
            parts.append(
                f"missing: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''} ({len(missing)})"
            )
        if unexpected:
            parts.append(
                f"unexpected: {', '.join(unexpected[:8])}{' ...' if len(unexpected) > 8 else ''} ({len(unexpected)})"
            )
        if mismatched:
            parts.append(f"shapes differ: {', '.join(mismatched[:5])}")
        raise WeightsMismatchError(
            f"{str(path)!r} does not fit {type(model).__name__} ({getattr(getattr(model, 'info', None), 'name', '')}): "
            + "; ".join(parts)
        )
    model.load_state_dict(out, strict=False)
    return notes


def adapt_channels(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """Stem filters (O, C_in, k, k) for ``channels`` inputs: summed to 1, or repeated and scaled by C_in / C."""
    c_in = weight.shape[1]
    if channels == 1:
        return weight.sum(1, keepdim=True)
    reps = -(-channels // c_in)
    return weight.repeat(1, reps, 1, 1)[:, :channels] * (c_in / channels)


def _resample(model: nn.Module, value: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    from .models.layers import resample_pos_embed

    grid = tuple(getattr(model, "grid", ()))  # the model's patch grid (ViT)
    if len(grid) != 2:
        side = math.isqrt(target.shape[1] - 1)
        grid = (side, side)
    prefix = target.shape[1] - grid[0] * grid[1]  # class / distillation tokens
    return resample_pos_embed(value, grid, prefix)


# ---- freezing ---------------------------------------------------------------------------------


def freeze(model: nn.Module, spec: str) -> list[str]:
    """``none`` | ``backbone`` (all but the classifier) | ``stages:N`` (the model's first N layer groups:
    the stem and N-1 blocks, see ``Classifier.layer_groups``). Returns the frozen parameter names.
    Frozen norm layers stay in eval mode (see ``keep_frozen_norms_eval``): their running statistics
    are part of what is kept."""
    for p in model.parameters():
        p.requires_grad_(True)
    if spec in ("", "none"):
        return []
    heads = tuple(h + "." for h in (getattr(model, "head_layers", ()) or ()))
    if spec == "backbone":
        frozen = [n for n, _ in model.named_parameters() if not n.startswith(heads)]
    elif spec.startswith("stages:"):
        try:
            count = int(spec.split(":", 1)[1])
        except ValueError:
            raise ConfigError(f"--freeze {spec!r}: expected stages:N") from None
        ids, head = model.group_ids()
        if not 0 < count <= head:
            raise ConfigError(
                f"--freeze {spec!r}: this model has {head} layer groups (the stem and {head - 1} blocks)"
            )
        frozen = [n for n, g in ids.items() if g < count]
    else:
        raise ConfigError(f"--freeze must be none, backbone or stages:N, got {spec!r}")
    params = dict(model.named_parameters())
    for n in frozen:
        params[n].requires_grad_(False)
    return frozen


def keep_frozen_norms_eval(model: nn.Module) -> None:
    """Put batch norms whose parameters are all frozen in eval mode (call after ``model.train()``)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            params = list(m.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                m.eval()
