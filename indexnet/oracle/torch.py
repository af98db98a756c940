"""PyTorch interoperability: the oracle from a ``torch.nn.Sequential``, autograd cross-checks,
and state_dict exchange with :class:`indexnet.nn.network.Network`.

torch is never a dependency: it is imported inside the functions that need it (install
it with ``pip install torch``). Nothing here pickles: state dicts are exchanged in memory
(or as ``.npz`` with ``allow_pickle=False``, via :func:`to_state_dict` ``as_numpy=True``).

Supported modules: ``Linear``, ``Conv2d`` (groups 1, dilation 1, zero padding, square
stride and padding, with bias), ``MaxPool2d`` / ``AvgPool2d`` (square window and
stride, no padding, floor mode), ``Flatten`` (from dim 1), and the activations ``ReLU``,
``LeakyReLU``, ``Sigmoid``, ``Tanh``, ``Softmax`` (over the feature axis), ``LogSoftmax``
(last, with ``NLLLoss``) and ``Identity``. indexnet fuses an activation into the linear or
conv layer before it; an activation anywhere else is a layer of its own.

PyTorch's own losses are available under their names (``"MSELoss"``, ``"CrossEntropyLoss"``,
``"NLLLoss"``, ``"BCELoss"``, ``"BCEWithLogitsLoss"``, with ``reduction=``; see
:mod:`indexnet.oracle.heads`) and mean exactly what the modules compute. indexnet's seed
losses correspond as follows (``z`` are the logits, the output before the final Softmax /
Sigmoid module, N the batch size; ``reduction="sum"`` drops the 1/N):

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
def oracle_from_torch(model, loss: str | None, X, Y=None, *, reduction: str | None = None, grad_output=None,
                      engine: str = "loops") -> OracleResult:
    """The oracle's values for a ``torch.nn.Sequential`` on PyTorch-layout data.

    Parameters
    ----------
    model : torch.nn.Sequential
        Its parameters are read (copied to float64); the model is not modified.
    loss : str or None
        An indexnet loss name or a PyTorch one (``"CrossEntropyLoss"``, ...); None with
        ``grad_output``.
    X, Y : tensor or array
        Samples first: ``(N, C, H, W)`` or ``(N, S_0)``; Y ``(N, S_L)`` or class labels.
    reduction, grad_output
        As in :func:`indexnet.oracle.dense`.

    Returns
    -------
    OracleResult
        In PyTorch's layouts; ``grads_dict("torch")`` keys match ``model.state_dict()``,
        ``by_module()`` keys the module indices.
    """
    layers, params = describe(model)
    return network(layers, params, loss, _numpy(X), None if Y is None else _numpy(Y), reduction=reduction,
                   grad_output=None if grad_output is None else _numpy(grad_output), layout="samples_first",
                   engine=engine)


# -------------------------------------------------------------------------------- autograd
@dataclass(frozen=True)
class TorchGradients:
    """PyTorch autograd's float64 values: ``loss``, ``grads`` keyed like ``state_dict``, ``dX``,
    and ``modules``: per module index its ``output`` and ``grad_output`` (∂J/∂output; absent
    for an output autograd does not reach, such as a final Softmax whose logits feed the loss)."""

    loss: float
    grads: dict
    dX: np.ndarray
    modules: dict


def torch_loss(loss: str, model, x, y, reduction: str | None = None):
    """The exact PyTorch expression of an oracle loss on ``model(x)`` (module docstring table).

    PyTorch's names are computed by their modules (``torch.nn.CrossEntropyLoss(reduction=...)``
    on the model's output). For ``cross_entropy`` and ``binary_cross_entropy`` the model must
    end in ``Softmax`` / ``Sigmoid``; the loss is taken on the logits ``model[:-1](x)``, as
    PyTorch's losses want.
    """
    from indexnet.oracle.heads import check_reduction, get_head

    torch = _torch()
    F = torch.nn.functional
    head = get_head(loss)
    reduction = check_reduction(head, reduction)
    N = x.shape[0]
    if head.name != head.base or head.per_element:  # a PyTorch name: its own module
        out = model(x)
        if head.name == "NLLLoss" and y.ndim == 2:
            y = y.argmax(dim=1)
        return getattr(torch.nn, head.name)(reduction=reduction)(out, y)
    c_over_sum = 1.0 / N if reduction == "mean" else 1.0
    if head.output_activation is not None:
        want = {"softmax": torch.nn.Softmax, "sigmoid": torch.nn.Sigmoid}[head.output_activation]
        if not isinstance(model[-1], want):
            raise ValueError(f"model: loss {loss!r} needs a final {want.__name__} module, got {type(model[-1]).__name__}")
        z = model[:-1](x)
        if loss == "cross_entropy":
            return F.cross_entropy(z, y, reduction="sum") * c_over_sum
        return F.binary_cross_entropy_with_logits(z, y, reduction="sum") * c_over_sum
    total = F.mse_loss(model(x), y, reduction="sum")
    half = 0.5 if loss in ("half_se", "euclidean") else 1.0
    return total * (half * c_over_sum)


def torch_autograd(model, loss: str | None, X, Y=None, *, reduction: str | None = None,
                   grad_output=None) -> TorchGradients:
    """Loss, gradients and every module's output and output gradient by PyTorch autograd in
    float64, on a float64 copy of ``model``.

    Y may be class labels ``(N,)`` for the cross-entropies (kept as labels for PyTorch's
    names, one-hot rows for indexnet's). With ``grad_output=G`` (and ``loss=None``)
    J = Σ G ⊙ model(X).
    """
    torch = _torch()
    import copy

    twin = copy.deepcopy(model).to(torch.float64)
    x = torch.tensor(as_float64("X", _numpy(X)), requires_grad=True)
    outputs: dict = {}
    hooks = [mod.register_forward_hook(lambda m, i, o, key=key: outputs.__setitem__(key, o))
             for key, mod in twin.named_children()]
    try:
        if grad_output is not None:
            out = twin(x)
            J = (out * torch.tensor(as_float64("grad_output", _numpy(grad_output)))).sum()
        else:
            y_raw = _numpy(Y)
            labels = y_raw.ndim == 1 and y_raw.dtype.kind in "iu"
            if labels and loss in ("cross_entropy",):
                y_raw = np.eye(twin(x).shape[1])[y_raw]
                outputs.clear()
            y = torch.tensor(y_raw) if labels and loss != "cross_entropy" else torch.tensor(as_float64("Y", y_raw))
            if labels and loss != "cross_entropy":
                y = y.long()
            J = torch_loss(loss, twin, x, y, reduction)
        for o in outputs.values():
            if o.requires_grad:
                o.retain_grad()
        J.backward()
    finally:
        for h in hooks:
            h.remove()
    grads = {k: p.grad.detach().numpy().copy() for k, p in twin.named_parameters()}
    modules = {}
    for key, o in outputs.items():
        entry = {"output": o.detach().numpy().copy()}
        if o.grad is not None:
            entry["grad_output"] = o.grad.detach().numpy().copy()
        modules[key] = entry
    return TorchGradients(loss=float(J.detach()), grads=grads, dX=x.grad.detach().numpy().copy(), modules=modules)


@dataclass(frozen=True)
class TorchComparison:
    """The oracle and autograd side by side; ``max_rel_error`` is the largest normwise relative
    error ‖mine − theirs‖ / ‖theirs‖ over the loss, dX, every parameter gradient and every
    module's output and output gradient."""

    oracle: OracleResult
    torch: TorchGradients
    max_rel_error: float


def _normwise(mine, ref) -> float:
    mine, ref = np.asarray(mine, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    diff = float(np.linalg.norm((mine - ref).ravel()))
    scale = float(np.linalg.norm(ref.ravel()))
    return 0.0 if diff == 0 else (diff / scale if scale else np.inf)


def compare_with_torch(model, loss: str | None, X, Y=None, *, reduction: str | None = None, grad_output=None,
                       rtol: float = 1e-10, atol: float = 0.0, engine: str = "loops") -> TorchComparison:
    """Check the oracle against PyTorch autograd (float64) on the same model and data.

    Compares the loss, ∂J/∂X, every parameter gradient (element by element, ``rtol`` /
    ``atol``) and, through :meth:`OracleResult.by_module`, every module's output and
    output gradient (normwise, within ``rtol``).

    Raises
    ------
    AssertionError
        From :func:`indexnet.oracle.assert_gradients_match`, naming what differs.
    """
    ours = oracle_from_torch(model, loss, X, Y, reduction=reduction, grad_output=grad_output, engine=engine)
    theirs = torch_autograd(model, loss, X, Y, reduction=reduction, grad_output=grad_output)
    mine = {"loss": ours.loss, "dX": ours.dX, **ours.grads_dict("torch")}
    ref = {"loss": theirs.loss, "dX": theirs.dX, **theirs.grads}
    assert_gradients_match(mine, ref, rtol=rtol, atol=atol)
    errors = [_normwise(mine[k], ref[k]) for k in ref]
    view = ours.by_module()
    for key, entry in theirs.modules.items():
        for what, value in entry.items():
            err = _normwise(view[key][what], value)
            if not err <= rtol:
                raise AssertionError(f"module {key} ({type(model[int(key)]).__name__}) {what}: normwise relative "
                                     f"error {err:.3g} > {rtol:g}")
            errors.append(err)
    return TorchComparison(oracle=ours, torch=theirs, max_rel_error=max(errors))


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
