"""Data: the one safe decode path (more to come: sources, transforms, loaders)."""

from .decode import BadImageError, decode_image

__all__ = ["BadImageError", "decode_image"]
