"""indexnet: neural networks written as explicit index loops.

Every formula of ``derivations/`` is a kernel in three forms (literal, loops, numpy)
in :mod:`indexnet.kernels`. The public API:

- :class:`Network`, :class:`Dense` (and the conv layers) — build, run and differentiate a network;
- :func:`get_loss` — the losses of the seeds;
- :func:`check_gradients`, :func:`check_network` — finite-difference and directional checks;
- :mod:`indexnet.oracle` — reference values for other projects' tests;
- :func:`parse_augment`, :class:`Augmenter` — affine and elastic distortions of image batches.
- :func:`load_model`, :func:`fit`, :class:`Model` — a trained model from a run folder, or one
  trained from Python, predicting from raw inputs (:mod:`indexnet.model`).

Attributes are imported on first use, so ``import indexnet`` (and ``indexnet --help``)
compiles nothing.
"""
from __future__ import annotations

import importlib

from indexnet._version import __version__

_EXPORTS = {
    "Network": "indexnet.nn.network",
    "Backprop": "indexnet.nn.network",
    "Dense": "indexnet.nn.layers.dense",
    "Conv2D": "indexnet.nn.layers.conv",
    "MaxPool2D": "indexnet.nn.layers.pooling",
    "AvgPool2D": "indexnet.nn.layers.pooling",
    "Flatten": "indexnet.nn.layers.flatten",
    "Loss": "indexnet.nn.losses",
    "LOSSES": "indexnet.nn.losses",
    "get_loss": "indexnet.nn.losses",
    "check_gradients": "indexnet.oracle.finite_diff",
    "check_network": "indexnet.oracle.finite_diff",
    "GradcheckReport": "indexnet.oracle.finite_diff",
    "oracle": "indexnet.oracle",
    "Augmenter": "indexnet.data.augment",
    "parse_augment": "indexnet.data.augment",
    "Model": "indexnet.model",
    "load_model": "indexnet.model",
    "fit": "indexnet.model",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'indexnet' has no attribute {name!r}")
    module = importlib.import_module(_EXPORTS[name])
    return module if name == "oracle" else getattr(module, name)


def __dir__():
    return sorted(__all__)
