"""Imports every family module so that each registers its variants."""

from . import alexnet, lenet, vgg  # noqa: F401
