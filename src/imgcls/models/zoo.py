"""Imports every family module so that each registers its variants."""

from . import alexnet, googlenet, inception, lenet, vgg  # noqa: F401
