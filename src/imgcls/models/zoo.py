"""Imports every family module so that each registers its variants."""

from . import alexnet, googlenet, inception, lenet, resnet, vgg  # noqa: F401
