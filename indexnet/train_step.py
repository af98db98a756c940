"""One optimisation step: forward, backward, update. The trainer's hot path.

:func:`make_train_step` returns ``step(X, Y) -> loss`` for a network, an optimiser and
an engine. This generic version runs :meth:`indexnet.Network.backward` and
``optimizer.step``; faster specialised paths (preallocated buffers, fused kernels) may
replace it for the shapes where they pay, and must agree with it.
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def decay_mask(net) -> list[bool]:
    """Which parameters get L2 weight decay: weights and kernels, not biases (derivations/optim.md)."""
    return [name != "b" for layer in net.layers for name in layer.param_names]


def flat_param_list(net) -> list[np.ndarray]:
    """The network's parameter arrays in a flat list (layer by layer, in ``param_names`` order)."""
    return [a for p in net.params for a in p]


def make_train_step(net, optimizer, engine: str = "fast") -> Callable[[np.ndarray, np.ndarray], float]:
    """A function ``step(X, Y) -> J`` that takes one gradient step on a batch.

    ``X`` and ``Y`` must already be checked (dtype, shape, finiteness) by the caller; the
    step does not re-check them. The parameters are updated in place.
    """
    params = flat_param_list(net)
    mask = decay_mask(net)

    def step(X: np.ndarray, Y: np.ndarray) -> float:
        result = net.backward(X, Y, engine, check=False, input_grad=False)
        grads = [g[name] for layer, g in zip(net.layers, result.grads) for name in layer.param_names]
        optimizer.step(params, grads, mask)
        return result.loss

    return step
