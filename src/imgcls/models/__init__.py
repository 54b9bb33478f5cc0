"""The model zoo: one registry, one interface, every family."""

from .base import Classifier, ModelConfig
from .registry import ModelInfo, build_model, list_models, model_info, register_model

__all__ = [
    "Classifier",
    "ModelConfig",
    "ModelInfo",
    "build_model",
    "list_models",
    "model_info",
    "register_model",
]
