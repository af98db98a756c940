"""One optimisation step: forward, backward, update. The trainer's hot path.

:func:`make_train_step` returns ``step(X, Y) -> loss`` for a network, an optimiser and
an engine. This generic version runs :meth:`indexnet.Network.backward` and
``optimizer.step``.

Engines. ``fast`` (the trainer's default) runs the kernels' ``_fast`` forms: networks
of dense layers with a fused output pass (softmax + cross-entropy, sigmoid + binary
cross-entropy, squared errors) through :mod:`indexnet.train.fastpath`, which composes
the fused fast forms (D1.5, D1.6, D2.6-D2.8, D2.14, L10-L12) on a workspace allocated
once per batch size; convolutional networks (convolution, max-pool, flatten, dense)
through :mod:`indexnet.train.convpath`, which composes C12, P2, P8, C7, C9 and the dense
and loss fast forms the same way; every other network through :meth:`indexnet.Network.backward`
with ``engine="fast"`` (each formula's ``_fast`` form, or the fastmath twin of its
loops form where it has none). ``loops`` is the exact, deterministic build everywhere:
it is the oracle the fast forms are tested against (tests/test_fast_forms.py,
tests/test_fastpath.py, tests/test_fast_conv.py).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from indexnet.nn.optim import decay_mask, flat_param_list, step_trusted
from indexnet.train.convpath import make_conv_step
from indexnet.train.fastpath import make_fast_step


def make_train_step(net, optimizer, engine: str = "fast",
                    defer_sync: bool = False) -> Callable[[np.ndarray, np.ndarray], float]:
    """A function ``step(X, Y) -> J`` that takes one gradient step on a batch.

    ``X`` and ``Y`` must already be checked (dtype, shape, finiteness) by the caller; the
    step does not re-check them. The parameters are updated in place. With
    ``defer_sync=True`` the fast engine may hold a parameter (and the optimiser's state of
    it) in another order between steps (the first layer's W, input-major, when it sums over
    its input's support): call ``step.sync()`` before reading the network's parameters or
    the optimiser's state. Every step has ``sync``.
    """
    params = flat_param_list(net)
    mask = decay_mask(net)
    if engine == "fast":
        fast_step = make_fast_step(net, optimizer, mask, defer_sync=defer_sync) or make_conv_step(net, optimizer, mask)
        if fast_step is not None:
            return fast_step

    def step(X: np.ndarray, Y: np.ndarray) -> float:
        result = net.backward(X, Y, engine, check=False, input_grad=False)
        grads = [g[name] for layer, g in zip(net.layers, result.grads) for name in layer.param_names]
        step_trusted(optimizer, params, grads, mask)
        return result.loss

    step.sync = lambda: None
    return step
