"""imgcls: image classification on PyTorch."""

from .errors import ImgclsError
from .models import list_models, model_info
from .transfer import create_model
from .version import __version__

__all__ = [
    "ImgclsError",
    "TrainConfig",
    "__version__",
    "create_model",
    "list_models",
    "load",
    "model_info",
    "train",
]


def __getattr__(name: str):  # the training engine loads on first use: `imgcls models` stays quick
    if name == "train":
        from .engine.trainer import train

        return train
    if name == "load":
        from .predict import load

        return load
    if name == "TrainConfig":
        from .engine.config import TrainConfig

        return TrainConfig
    raise AttributeError(f"module 'imgcls' has no attribute {name!r}")
