"""The other frameworks the bench races: PyTorch and JAX, both optional.

Each is imported only when asked for; when it is not installed (or ``--no-torch`` /
``--no-jax``), :func:`load` returns ``None`` and a reason that the report prints, and
the rows run without it.

* PyTorch: the plain training loop a user writes (``zero_grad``, forward, ``backward``,
  ``SGD.step``) in eager mode, samples first as PyTorch expects.
* JAX: the step (forward, ``jax.grad``, SGD) under ``jax.jit``; the epoch as one
  ``jax.lax.scan`` over the batches, so Python is entered once per epoch (``jax-scan``).
  The jitted step called from a Python loop is timed too (``jax-loop``).

Every contender starts from the same weights as indexnet's network (copied), trains with
SGD at the same learning rate on the same batches in the same order.
"""
from __future__ import annotations

import importlib

import numpy as np

#: how to install each contender
INSTALL = {"torch": "pip install torch", "jax": "pip install 'indexnet[bench]' (jax, jaxlib)"}


def load(name: str, wanted: bool = True):
    """``(module, None)`` when ``name`` (``"torch"`` or ``"jax"``) imports, else ``(None, reason)``."""
    if name not in INSTALL:
        raise ValueError(f"contender: expected one of {sorted(INSTALL)}, got {name!r}")
    if not wanted:
        return None, f"{name} left out (--no-{name})"
    try:
        return importlib.import_module(name), None
    except ImportError as err:
        return None, f"{name} not installed ({err.__class__.__name__}: {err}); {INSTALL[name]}"


def version(module) -> str | None:
    return getattr(module, "__version__", None) if module is not None else None


# ------------------------------------------------------------------------------- PyTorch
def torch_dense(torch, net, lr: float):
    """A PyTorch copy of the dense network ``net`` (same weights) and ``step(X, y)`` on (N, S) tensors.

    ``y`` is class indices for cross-entropy, targets (N, K) otherwise.
    """
    dt = torch.float32 if net.dtype == np.float32 else torch.float64
    acts = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid}
    layers = []
    for k, (layer, (W, b)) in enumerate(zip(net.layers, net.params)):
        lin = torch.nn.Linear(W.shape[1], W.shape[0], dtype=dt)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.array(W)))
            lin.bias.copy_(torch.from_numpy(np.array(b)))
        layers.append(lin)
        if k < len(net.layers) - 1:
            layers.append(acts[layer.activation]())
    return _torch_step(torch, torch.nn.Sequential(*layers), net.loss_fn.name, lr)


def torch_cnn(torch, net, lr: float):
    """A PyTorch copy of the small CNN ``net`` (conv + σ, max-pool, flatten, dense softmax), same weights.

    ``step(X, y)`` takes images (N, C, H, W) and class indices.
    """
    dt = torch.float32 if net.dtype == np.float32 else torch.float64
    acts = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid}
    layers = []
    for layer, params in zip(net.layers, net.params):
        kind = type(layer).__name__
        if kind == "Conv2D":
            K, b = params
            conv = torch.nn.Conv2d(K.shape[1], K.shape[0], K.shape[2:], stride=layer.stride, padding=layer.pad,
                                   dtype=dt)
            with torch.no_grad():
                conv.weight.copy_(torch.from_numpy(np.array(K)))
                conv.bias.copy_(torch.from_numpy(np.array(b)))
            layers += [conv] + ([acts[layer.activation]()] if layer.activation != "identity" else [])
        elif kind == "MaxPool2D":
            layers.append(torch.nn.MaxPool2d(layer.size, stride=layer.stride))
        elif kind == "Flatten":
            layers.append(torch.nn.Flatten())
        elif kind == "Dense":
            W, b = params
            lin = torch.nn.Linear(W.shape[1], W.shape[0], dtype=dt)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.array(W)))
                lin.bias.copy_(torch.from_numpy(np.array(b)))
            layers.append(lin)
        else:
            raise ValueError(f"torch_cnn: no PyTorch twin for layer {kind}")
    if not any(isinstance(m, torch.nn.Flatten) for m in layers):
        last = next(i for i in range(len(layers) - 1, -1, -1) if isinstance(layers[i], torch.nn.Linear))
        layers.insert(last, torch.nn.Flatten())
    return _torch_step(torch, torch.nn.Sequential(*layers), net.loss_fn.name, lr)


def _torch_step(torch, model, loss: str, lr: float):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    lossf = torch.nn.CrossEntropyLoss() if loss == "cross_entropy" else torch.nn.MSELoss()

    def step(X, y):
        opt.zero_grad(set_to_none=True)
        J = lossf(model(X), y)
        J.backward()
        opt.step()
        return J

    return step


# ----------------------------------------------------------------------------------- JAX
def jax_dense(jax, net, lr: float):
    """The dense softmax-cross-entropy network ``net`` in JAX (same weights, samples last).

    Returns ``(step, epoch, params)``: ``step(params, X, Y) -> (params, J)`` under ``jax.jit``;
    ``epoch(params, Xs, Ys) -> (params, Js)`` scans ``step`` over batches stacked on axis 0
    (``Xs`` (steps, S_0, N), ``Ys`` (steps, K, N) one-hot), also jitted.
    """
    jnp = jax.numpy
    if net.loss_fn.name != "cross_entropy":
        raise ValueError(f"jax_dense: the JAX contender trains softmax + cross-entropy, got {net.loss_fn.name!r}")
    acts = {"relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid}
    hidden = [acts[layer.activation] for layer in net.layers[:-1]]
    params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in net.params]

    def loss(ps, X, Y):
        A = X
        for (W, b), f in zip(ps[:-1], hidden):
            A = f(W @ A + b[:, None])
        W, b = ps[-1]
        Z = W @ A + b[:, None]
        return -jnp.mean(jnp.sum(Y * jax.nn.log_softmax(Z, axis=0), axis=0))

    def step(ps, X, Y):
        J, g = jax.value_and_grad(loss)(ps, X, Y)
        return jax.tree_util.tree_map(lambda p, d: p - lr * d, ps, g), J

    def epoch(ps, Xs, Ys):
        return jax.lax.scan(lambda p, xy: step(p, *xy), ps, (Xs, Ys))

    return jax.jit(step), jax.jit(epoch), params


def jax_threads() -> str:
    """What bounds XLA's CPU threads (it takes every core unless XLA_FLAGS says otherwise)."""
    import os

    return os.environ.get("XLA_FLAGS", "XLA default (all cores)")
