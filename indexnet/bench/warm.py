"""Compile every kernel once into numba's on-disk cache, so later runs start warm.

Run once after installing (or after upgrading numba/indexnet)::

    python -m indexnet.bench.warm          # or: indexnet bench --warm

Kernels are compiled lazily otherwise: commands that do not train never pay for
compilation, and the first training step compiles only the kernels it uses. This module
drives every kernel through the public API — every engine (literal, loops, numpy, fast),
float64 and float32, every loss, the trainer's step at small and large sizes, the
optimisers, and conv/pooling layers when present — which compiles (or loads from the
cache) one signature of each.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from indexnet.nn.engine import ENGINES

#: (sizes, activations, loss) of the dense nets that touch every activation and loss kernel
DENSE_NETS = (
    ([3, 4, 3], ["relu", "softmax"], "cross_entropy"),
    ([3, 4, 2], ["tanh", "sigmoid"], "binary_cross_entropy"),
    ([3, 4, 5, 2], ["leaky_relu", "sigmoid", "identity"], "mse"),
)


def _targets(net, N, rng):
    K = net.output_shape[0]
    if net.loss_fn.name == "cross_entropy":
        return np.ascontiguousarray(np.eye(K, dtype=net.dtype)[:, rng.integers(0, K, N)])
    if net.loss_fn.name == "binary_cross_entropy":
        return rng.uniform(size=(K, N)).astype(net.dtype)
    return rng.standard_normal((K, N)).astype(net.dtype)


def _optimizers(engine):
    try:
        from indexnet.nn.optim import OPTIMIZERS
    except ImportError:  # optimisers not there yet
        return []
    return [cls(lr=0.01, engine=engine) for cls in OPTIMIZERS.values()]


def _image_nets(dtype):
    """A conv + max-pool + avg-pool + dense net, when those layers exist."""
    try:
        from indexnet.nn.layers.conv import Conv2D
        from indexnet.nn.layers.flatten import Flatten
        from indexnet.nn.layers.pooling import AvgPool2D, MaxPool2D
        from indexnet.nn.network import Network

        layers = [Conv2D(2, (3, 3), pad=1, activation="relu"), MaxPool2D(2), AvgPool2D(2), Flatten(),
                  Dense(3, "softmax")]
        return [Network(layers, (1, 8, 8), "cross_entropy", dtype=dtype)]
    except Exception:  # noqa: BLE001 - layers still being written: warm what exists
        return []


from indexnet.nn.layers.dense import Dense  # noqa: E402


def warm(dtypes=(np.float64, np.float32), parts_wanted=("generic", "fast"), log=None) -> dict:
    """Compile (or load) every kernel; returns seconds per part.

    ``parts_wanted``: ``generic`` (every engine through ``Network.backward``, every
    optimiser) and/or ``fast`` (the trainer's step, :func:`indexnet.train.step.make_train_step`).
    """
    from indexnet.nn.network import Network
    from indexnet.train.step import make_train_step
    from indexnet.nn.optim import decay_mask, flat_param_list

    rng = np.random.default_rng(0)
    parts = {}
    for dt in dtypes:
        t0 = time.perf_counter()
        nets = [] if "generic" not in parts_wanted else [Network.from_sizes(s, a, loss, dtype=dt) for s, a, loss in DENSE_NETS] + _image_nets(dt)
        for net in nets:
            N = 3
            X = rng.standard_normal((*net.input_shape, N)).astype(dt)
            Y = _targets(net, N, rng)
            for engine in ENGINES:
                for fused in (True, False):
                    net.backward(X, Y, engine, fused=fused)
        for engine in ENGINES if nets else ():
            for opt in _optimizers(engine):
                p = flat_param_list(nets[0])
                opt.step([a.copy() for a in p], [np.ones_like(a) for a in p], decay_mask(nets[0]))
        if nets:
            parts[f"generic {np.dtype(dt).name}"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for s, a, loss in DENSE_NETS if "fast" in parts_wanted else ():
            # a tiny net as given, and 256-wide layers at batch 100 (the trainer's step picks its
            # kernels by size: both regimes)
            for sizes, N in ((s, 3), ([256] * (len(s) - 1) + [s[-1]], 100)):
                net = Network.from_sizes(sizes, a, loss, dtype=dt)
                X = rng.standard_normal((sizes[0], N)).astype(dt)
                for opt in _optimizers("fast")[:2]:  # SGD (fused when small) and momentum
                    make_train_step(net, opt, "fast")(X, _targets(net, N, rng))
        if "fast" in parts_wanted:
            parts[f"fast path {np.dtype(dt).name}"] = time.perf_counter() - t0
        if log:
            log(", ".join(f"{k} {v:.1f} s" for k, v in parts.items() if k.endswith(np.dtype(dt).name)))
    return parts


def main(argv=None) -> int:
    """``python -m indexnet.bench.warm [--quiet] [--trainer]``: warm the cache, print seconds per part.

    ``--trainer`` compiles only what training a dense float32 network needs (the trainer's
    step); the default is the whole kernel set.
    """
    argv = sys.argv[1:] if argv is None else argv
    t0 = time.perf_counter()
    parts = warm((np.float32,), ("fast",)) if "--trainer" in argv else warm()
    total = time.perf_counter() - t0
    summary = ", ".join(f"{k} {v:.1f} s" for k, v in parts.items())
    if "--quiet" in argv:
        print(summary)
    else:
        print(f"indexnet kernels compiled or loaded in {total:.1f} s ({summary})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
