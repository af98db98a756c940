"""Layers: kernels assembled into the pieces of a network.

Every layer follows :class:`indexnet.nn.layers.base.Layer`: a frozen description
(sizes, activation) plus ``init_params``, ``forward`` and ``backward`` that call the
kernels of one engine. Parameters live outside the layer, in the network, so the same
layer description serves any number of parameter sets.
"""
from __future__ import annotations

import importlib

from indexnet.nn.layers.base import Layer, LayerCache, LayerGrads
from indexnet.nn.layers.dense import Dense

#: layer kind (as in ``to_config()["kind"]``) -> (module, class)
KINDS = {
    "dense": ("indexnet.nn.layers.dense", "Dense"),
    "conv2d": ("indexnet.nn.layers.conv", "Conv2D"),
    "maxpool2d": ("indexnet.nn.layers.pooling", "MaxPool2D"),
    "avgpool2d": ("indexnet.nn.layers.pooling", "AvgPool2D"),
    "flatten": ("indexnet.nn.layers.flatten", "Flatten"),
}


def layer_class(kind: str):
    """The class of a layer kind; ValueError listing the kinds otherwise."""
    if kind not in KINDS:
        raise ValueError(f"layer kind: expected one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    module, name = KINDS[kind]
    return getattr(importlib.import_module(module), name)


def layer_from_config(config: dict) -> Layer:
    """Rebuild a layer from its ``to_config()`` dictionary."""
    config = dict(config)
    cls = layer_class(config.pop("kind", None))
    return cls(**config)


__all__ = ["Layer", "LayerCache", "LayerGrads", "Dense", "KINDS", "layer_class", "layer_from_config"]
