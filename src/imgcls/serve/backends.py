"""What the server runs: a run folder's model in PyTorch, or an exported ONNX file in onnxruntime.
Both decode through imgcls's one decode path and eval geometry (``Preprocess``), so the server's
probabilities for a file are ``imgcls predict``'s."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.pipeline import Preprocess
from ..data.transforms import to_uint8_tensor
from ..errors import ConfigError
from ..export import sidecar_for
from ..predict import load
from ..run import RunFolder


class Backend:
    """A model to serve: its classes, task and threshold, how an image becomes its input, and a
    forward pass over a uint8 batch (N, C, H, W) that returns probabilities (N, classes)."""

    name = ""
    model = ""
    classes: list[str]
    task: str
    threshold: float
    preprocess: Preprocess

    def prepare(self, data: bytes) -> torch.Tensor:
        """uint8 (C, H, W): the one decode path, then the eval geometry (raises BadImageError)."""
        pre = self.preprocess
        return to_uint8_tensor(pre.geometry(pre.load(data, name="the uploaded image")))

    def infer(self, pixels: torch.Tensor) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        pre = self.preprocess
        return {"model": self.model, "backend": self.name, "task": self.task, "labels": list(self.classes),
                "threshold": self.threshold, "input_size": [pre.channels, pre.size, pre.size],
                "color_space": pre.color_space}  # fmt: skip


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, run: str | Path, threads: int | None = None) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.clf = load(run)
        self.model = self.clf.meta.model if self.clf.meta else ""
        self.classes, self.task = list(self.clf.classes), self.clf.task.kind
        self.threshold, self.preprocess = self.clf.task.threshold, self.clf.preprocess

    @torch.no_grad()
    def infer(self, pixels: torch.Tensor) -> np.ndarray:
        x = self.preprocess.normalizer(pixels)
        return self.clf.task.probs(self.clf.logits(x)).numpy()


class OnnxBackend(Backend):
    name = "onnx"

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        path = Path(path)
        sidecar = sidecar_for(path)
        if not sidecar.is_file():
            raise ConfigError(
                f"{path} has no {sidecar.name} beside it: export it with imgcls export, which writes both"
            )
        meta = json.loads(sidecar.read_text())
        self.meta = meta
        self.model, self.classes, self.task = (
            meta.get("model") or path.stem,
            list(meta["classes"]),
            meta["task"],
        )
        self.threshold = float(meta["threshold"])
        self.preprocess = Preprocess.from_dict(meta["preprocess"])
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.logits = meta["output"]["name"] == "logits"
        shape = self.session.get_inputs()[0].shape
        self.dynamic = not isinstance(shape[0], int)

    def infer(self, pixels: torch.Tensor) -> np.ndarray:
        x = self.preprocess.normalizer(pixels).float().numpy()
        if self.dynamic:
            out = self.session.run(None, {self.input: x})[0]
        else:  # a file exported with a fixed batch of 1
            out = np.concatenate(
                [self.session.run(None, {self.input: x[i : i + 1]})[0] for i in range(len(x))]
            )
        if self.logits:
            z = torch.from_numpy(out) / float(self.meta.get("temperature", 1.0))
            out = (z.softmax(1) if self.task == "multiclass" else torch.sigmoid(z)).numpy()
            if self.task == "binary":
                out = np.concatenate([1 - out, out], 1)
        return out


def resolve_target(target: str | Path, kind: str = "auto") -> tuple[str, Path]:
    """("torch" | "onnx", the path to load) for what ``imgcls serve`` was given: a run folder (or its
    model.safetensors) or a catalogue weight name for torch, an exported .onnx file (or a run folder holding one) for onnx. pt2
    files are refused: they unpickle their weights with code execution allowed."""
    path = Path(target)
    if path.suffix == ".pt2":
        raise ConfigError(
            f"{path}: pt2 files load their weights by unpickling, which can run code, so imgcls serve does not "
            "load them; serve the run folder (--backend torch) or its ONNX export (--backend onnx)"
        )
    if not path.exists():
        from ..pretrained import is_weight_name

        if is_weight_name(str(target)) and kind != "onnx":  # pretrained weights by name (imgcls weights list)
            return "torch", path
        raise ConfigError(
            f"{path} does not exist: give a run folder, an exported .onnx file or a weight name"
        )
    if path.suffix == ".onnx":
        if kind == "torch":
            raise ConfigError(f"{path} is an ONNX file: --backend torch serves a run folder")
        return "onnx", path
    if kind == "onnx":
        onnx = RunFolder.of(path).exported("onnx")
        if not onnx.is_file():
            raise ConfigError(
                f"{onnx} does not exist: imgcls export {path} --format onnx --dynamic-batch makes it"
            )
        return "onnx", onnx
    return "torch", path


def open_backend(target: str | Path, kind: str = "auto", threads: int | None = None) -> Backend:
    """The backend for ``target`` (see ``resolve_target``), loaded."""
    kind, path = resolve_target(target, kind)
    return OnnxBackend(path, threads) if kind == "onnx" else TorchBackend(path, threads)
