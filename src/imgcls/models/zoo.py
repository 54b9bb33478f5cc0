"""Imports every family module so that each registers its variants."""

from . import (  # noqa: F401
    airbench,
    alexnet,
    cct,
    coatnet,
    convnext,
    densenet,
    efficientnet,
    googlenet,
    inception,
    lenet,
    mobilenet,
    preact_resnet,
    regnet,
    resnet,
    swin,
    vgg,
    vit,
    xception,
)
