"""imgcls: image classification on PyTorch."""

from .errors import ImgclsError
from .models import create_model, list_models, model_info

__version__ = "0.1.0"
__all__ = ["ImgclsError", "__version__", "create_model", "list_models", "model_info"]
