"""One optimisation step: forward, backward, update. The trainer's hot path.

:func:`make_train_step` returns ``step(X, Y) -> loss`` for a network, an optimiser and
an engine. This generic version runs :meth:`indexnet.Network.backward` and
``optimizer.step``.

Engines. ``fast`` (the default, the trainer's "loops" engine in the benchmark's words)
dispatches networks of dense layers with a fused output (softmax + cross-entropy,
sigmoid + binary cross-entropy, squared errors) to :mod:`indexnet.train.fastpath`: the same
sums as the loops forms with the fast build's fastmath flags, register-blocked where
the layers are large (:mod:`indexnet.kernels.tiled`), one fused serial call where they
are small. Every other
network, and every other engine, takes the generic path. ``loops`` stays the exact,
deterministic build on purpose: it is the oracle the fast path is tested against
(tests/test_fastpath.py: loss and gradients equal within rtol 1e-4 in float32 and 1e-10
in float64, relative to each array's largest magnitude).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from indexnet.nn.optim import decay_mask, flat_param_list
from indexnet.train.fastpath import make_fast_step


def make_train_step(net, optimizer, engine: str = "fast") -> Callable[[np.ndarray, np.ndarray], float]:
    """A function ``step(X, Y) -> J`` that takes one gradient step on a batch.

    ``X`` and ``Y`` must already be checked (dtype, shape, finiteness) by the caller; the
    step does not re-check them. The parameters are updated in place.
    """
    params = flat_param_list(net)
    mask = decay_mask(net)
    if engine == "fast":
        fast_step = make_fast_step(net, optimizer, mask)
        if fast_step is not None:
            return fast_step

    def step(X: np.ndarray, Y: np.ndarray) -> float:
        result = net.backward(X, Y, engine, check=False, input_grad=False)
        grads = [g[name] for layer, g in zip(net.layers, result.grads) for name in layer.param_names]
        optimizer.step(params, grads, mask)
        return result.loss

    return step
