"""PyTorch interoperability: the oracle from a ``torch.nn.Sequential``, autograd cross-checks,
and state_dict exchange with :class:`indexnet.nn.network.Network`.

torch is never a dependency: it is imported inside the functions that need it (install
it with ``pip install torch``). Nothing here pickles: state dicts are exchanged in memory
(or as ``.npz`` with ``allow_pickle=False``, via :func:`to_state_dict` ``as_numpy=True``).

Supported modules: ``Linear``, ``Conv2d`` (groups 1, dilation 1, zero padding, square
stride and padding, with bias), ``MaxPool2d`` / ``AvgPool2d`` (square window and
stride, no padding, floor mode), ``Flatten`` (from dim 1), and the activations ``ReLU``,
``LeakyReLU``, ``Sigmoid``, ``Tanh``, ``Softmax`` (over the feature axis) and
``Identity``. indexnet fuses an activation into the linear or conv layer before it.

Loss correspondence (indexnet's losses are not rescaled to PyTorch's reductions; ``z`` are
the logits, the output before the final Softmax / Sigmoid module, N the batch size):

=========================  ==============================================================
indexnet                   exact PyTorch expression
=========================  ==============================================================
``mse``                    ``F.mse_loss(a, y, reduction="sum") / N`` (= ``MSELoss()`` · S_L)
``half_se``                ``0.5 * F.mse_loss(a, y, reduction="sum")``
``euclidean``              ``F.mse_loss(a, y, reduction="sum") / (2 * N)``
``cross_entropy``          ``F.cross_entropy(z, y)`` (``CrossEntropyLoss`` takes logits and
                           mean-reduces over samples; y one-hot or class probabilities)
``binary_cross_entropy``   ``F.binary_cross_entropy_with_logits(z, y, reduction="sum") / N``
=========================  ==============================================================
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from indexnet.nn.layers.conv import Conv2D
from indexnet.nn.layers.dense import Dense
from indexnet.nn.layers.flatten import Flatten
from indexnet.nn.layers.pooling import AvgPool2D, MaxPool2D
from indexnet.nn.losses import get_loss
from indexnet.nn.network import Network
from indexnet.oracle._arrays import as_float64
from indexnet.oracle._core import OracleResult, _pairs, network, parse_layers, torch_indices
from indexnet.oracle.compare import assert_gradients_match, relative_error
from indexnet.oracle.describe import _numpy, _torch, describe  # noqa: F401  (describe: public here too)

#: the exact PyTorch expression of each indexnet loss (see the module docstring)
TORCH_LOSS_EXPRESSIONS = {
    "mse": 'F.mse_loss(a, y, reduction="sum") / N',
    "half_se": '0.5 * F.mse_loss(a, y, reduction="sum")',
    "euclidean": 'F.mse_loss(a, y, reduction="sum") / (2 * N)',
    "cross_entropy": "F.cross_entropy(z, y)",
    "binary_cross_entropy": 'F.binary_cross_entropy_with_logits(z, y, reduction="sum") / N',
}
def oracle_from_torch(model, loss: str, X, Y, *, engine: str = "loops") -> OracleResult:
    """The oracle's values for a ``torch.nn.Sequential`` on PyTorch-layout data.

    Parameters
    ----------
    model : torch.nn.Sequential
        Its parameters are read (copied to float64); the model is not modified.
    loss : str
        An indexnet loss name (see :data:`TORCH_LOSS_EXPRESSIONS` for the torch equivalent).
    X, Y : tensor or array
        Samples first: ``(N, C, H, W)`` or ``(N, S_0)``; Y ``(N, S_L)`` or class labels.

    Returns
    -------
    OracleResult
        In PyTorch's layouts; ``grads_dict("torch")`` keys match ``model.state_dict()``.
    """
    layers, params = describe(model)
    return network(layers, params, loss, _numpy(X), _numpy(Y), layout="samples_first", engine=engine)


# -------------------------------------------------------------------------------- autograd
@dataclass(frozen=True)
class TorchGradients:
    """PyTorch autograd's float64 values: ``loss``, ``grads`` keyed like ``state_dict``, ``dX``."""

    loss: float
    grads: dict
    dX: np.ndarray


def torch_loss(loss: str, model, x, y):
    """The exact PyTorch expression of an indexnet loss on ``model(x)`` (module docstring table).

    For ``cross_entropy`` and ``binary_cross_entropy`` the model must end in ``Softmax`` /
    ``Sigmoid``; the loss is taken on the logits ``model[:-1](x)``, as PyTorch's losses want.
    """
    torch = _torch()
    F = torch.nn.functional
    spec = get_loss(loss)
    N = x.shape[0]
    if spec.output_activation is not None:
        want = {"softmax": torch.nn.Softmax, "sigmoid": torch.nn.Sigmoid}[spec.output_activation]
        if not isinstance(model[-1], want):
            raise ValueError(f"model: loss {loss!r} needs a final {want.__name__} module, got {type(model[-1]).__name__}")
        z = model[:-1](x)
        if loss == "cross_entropy":
            return F.cross_entropy(z, y)
        return F.binary_cross_entropy_with_logits(z, y, reduction="sum") / N
    a = model(x)
    total = F.mse_loss(a, y, reduction="sum")
    return {"mse": total / N, "half_se": 0.5 * total, "euclidean": total / (2 * N)}[loss]


def torch_autograd(model, loss: str, X, Y) -> TorchGradients:
    """Loss and gradients by PyTorch autograd in float64, on a float64 copy of ``model``.

    Y may be class labels ``(N,)`` for ``cross_entropy``; they are turned into one-hot rows.
    """
    torch = _torch()
    import copy

    twin = copy.deepcopy(model).to(torch.float64)
    x = torch.tensor(as_float64("X", _numpy(X)), requires_grad=True)
    y_raw = _numpy(Y)
    if loss == "cross_entropy" and y_raw.ndim == 1 and y_raw.dtype.kind in "iu":
        n_classes = twin(x).shape[1]
        y_raw = np.eye(n_classes)[y_raw]
    y = torch.tensor(as_float64("Y", y_raw))
    J = torch_loss(loss, twin, x, y)
    J.backward()
    grads = {k: p.grad.detach().numpy().copy() for k, p in twin.named_parameters()}
    return TorchGradients(loss=float(J.detach()), grads=grads, dX=x.grad.detach().numpy().copy())


@dataclass(frozen=True)
class TorchComparison:
    """The oracle and autograd side by side; ``max_rel_error`` over loss, dX and every parameter."""

    oracle: OracleResult
    torch: TorchGradients
    max_rel_error: float


def compare_with_torch(model, loss: str, X, Y, *, rtol: float = 1e-10, atol: float = 0.0) -> TorchComparison:
    """Check the oracle against PyTorch autograd (float64) on the same model and data.

    Raises
    ------
    AssertionError
        From :func:`indexnet.oracle.assert_gradients_match`, naming what differs.
    """
    ours = oracle_from_torch(model, loss, X, Y)
    theirs = torch_autograd(model, loss, X, Y)
    mine = {"loss": ours.loss, "dX": ours.dX, **ours.grads_dict("torch")}
    ref = {"loss": theirs.loss, "dX": theirs.dX, **theirs.grads}
    assert_gradients_match(mine, ref, rtol=rtol, atol=atol)
    worst = max(float(np.max(relative_error(mine[k], ref[k]), initial=0.0)) for k in ref)
    return TorchComparison(oracle=ours, torch=theirs, max_rel_error=worst)


# ------------------------------------------------------------------ Network <-> state_dict
def _module_keys(net: Network) -> list[str | None]:
    """The state_dict prefix of each layer with parameters (None for the others)."""
    return [t if layer.param_names else None for t, layer in zip(torch_indices(net.layers), net.layers)]


def to_state_dict(net: Network, *, as_numpy: bool = False) -> dict:
    """A ``state_dict`` of the equivalent ``torch.nn.Sequential`` (see :func:`to_torch`).

    Parameters
    ----------
    net : Network
    as_numpy : bool
        Return NumPy arrays (no torch needed; suitable for ``np.savez``) instead of tensors.

    Returns
    -------
    dict
        ``{"0.weight": (out, in) or (C_out, C_in, kh, kw), "0.bias": (out,), ...}``, copies,
        in the network's dtype.
    """
    out = {}
    for key, p in zip(_module_keys(net), net.params):
        if key is not None:
            out[f"{key}.weight"], out[f"{key}.bias"] = p[0].copy(), p[1].copy()
    if as_numpy:
        return out
    torch = _torch()
    return {k: torch.from_numpy(v) for k, v in out.items()}


def load_state_dict(net: Network, state_dict: Mapping[str, Any]) -> Network:
    """A new Network with ``net``'s architecture and the parameters of ``state_dict``.

    Parameters
    ----------
    net : Network
        The architecture (not modified).
    state_dict : mapping
        Keys as :func:`to_state_dict` makes them; tensors or arrays (e.g. from
        ``np.load(path, allow_pickle=False)``); converted to the network's dtype.

    Raises
    ------
    KeyError
        A missing or an unexpected key, naming it.
    ValueError
        A shape that does not fit, naming the key.
    """
    keys = {f"{k}.{p}" for k in _module_keys(net) if k is not None for p in ("weight", "bias")}
    given = set(state_dict)
    if keys != given:
        raise KeyError(f"state_dict: expected keys {sorted(keys)}, missing {sorted(keys - given)}, "
                       f"unexpected {sorted(given - keys)}")
    params = []
    for key, layer, old in zip(_module_keys(net), net.layers, net.params):
        if key is None:
            params.append(())
            continue
        new = []
        for suffix, ref in zip(("weight", "bias"), old):
            arr = np.ascontiguousarray(_numpy(state_dict[f"{key}.{suffix}"]), dtype=net.dtype)
            if arr.shape != ref.shape:
                raise ValueError(f"state_dict[{key + '.' + suffix!r}]: expected shape {ref.shape}, got {arr.shape}")
            new.append(arr)
        params.append(tuple(new))
    return Network(net.layers, net.input_shape, net.loss_fn.name, dtype=net.dtype, seed=net.seed, params=params)


def to_torch(net: Network):
    """The equivalent ``torch.nn.Sequential`` with ``net``'s parameters (same dtype).

    One module per layer (``Linear``, ``Conv2d``, ``MaxPool2d``, ``AvgPool2d``,
    ``Flatten``), followed by its activation module unless the activation is the identity.
    """
    torch = _torch()
    nn = torch.nn
    acts = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "softplus": lambda: nn.Softplus(threshold=50.0)}
    modules = []
    for layer, shape in zip(net.layers, net.shapes):
        if isinstance(layer, Dense):
            modules.append(nn.Linear(shape[0], layer.units))
        elif isinstance(layer, Conv2D):
            modules.append(nn.Conv2d(shape[0], layer.filters, layer.kernel_size, stride=layer.stride, padding=layer.pad))
        elif isinstance(layer, (MaxPool2D, AvgPool2D)):
            cls = nn.MaxPool2d if isinstance(layer, MaxPool2D) else nn.AvgPool2d
            modules.append(cls(layer.size, stride=layer.stride))
        elif isinstance(layer, Flatten):
            modules.append(nn.Flatten())
        else:
            raise ValueError(f"net: layer {layer.spec()!r} has no PyTorch equivalent here")
        act = getattr(layer, "activation", "identity")
        if act == "leaky_relu":
            modules.append(nn.LeakyReLU(layer.alpha))
        elif act == "softmax":
            modules.append(nn.Softmax(dim=1))
        elif act != "identity":
            modules.append(acts[act]())
    model = nn.Sequential(*modules).to(torch.float64 if net.dtype == np.float64 else torch.float32)
    model.load_state_dict(to_state_dict(net), strict=True)
    return model


def from_torch(model, input_shape, loss: str, *, dtype=np.float64) -> Network:
    """An indexnet Network with the architecture and parameters of a ``torch.nn.Sequential``.

    Parameters
    ----------
    model : torch.nn.Sequential
    input_shape : tuple of int
        One sample's shape without the batch axis: ``(S_0,)`` or ``(C, H, W)``.
    loss : str
        The indexnet loss of the new network.
    dtype : float32 or float64
    """
    layers, state = describe(model)
    pairs = _pairs(state)
    parsed, _ = parse_layers(layers, pairs)
    params, it = [], iter(pairs)
    for layer in parsed:
        params.append(tuple(np.ascontiguousarray(a, dtype=dtype) for a in next(it)) if layer.param_names else ())
    return Network(parsed, tuple(int(s) for s in input_shape), loss, dtype=dtype, params=params)


__all__ = ["TORCH_LOSS_EXPRESSIONS", "describe", "oracle_from_torch", "TorchGradients", "torch_loss", "torch_autograd",
           "TorchComparison", "compare_with_torch", "to_state_dict", "load_state_dict", "to_torch", "from_torch"]
