"""The oracle's computation: the caller's layouts in, one exact float64 pass, the caller's layouts out.

Internally everything is samples last (``(S, N)``, ``(C, H, W, N)``) with weights
``(out, in)`` and kernels ``(C_out, C_in, kh, kw)``, and the pass is
:meth:`indexnet.nn.network.Network.backward` with the exact ``loops`` build (no fastmath,
``prange`` over output elements only, every reduction sequential), so the numbers do not
depend on the thread count. Inputs are copied to float64 first, whatever their dtype.
"""
from __future__ import annotations

from math import prod
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from indexnet._validate import check_choice, check_real
from indexnet.nn.layers.base import Layer
from indexnet.nn.layers.conv import Conv2D
from indexnet.nn.layers.dense import Dense
from indexnet.nn.layers.flatten import Flatten
from indexnet.nn.layers.pooling import AvgPool2D, MaxPool2D
from indexnet.nn.network import Network
from indexnet.oracle._arrays import as_float64
from indexnet.oracle.bounds import as_precision, network_bounds
from indexnet.oracle.describe import describe
from indexnet.oracle._layers import Activation
from indexnet.oracle.heads import Head, check_reduction, check_targets, evaluate, get_head
from indexnet.oracle.result import OracleResult

#: where the samples are: rows (seed 001, PyTorch, Keras) or columns (seed 004, indexnet)
LAYOUTS = ("samples_first", "samples_last")
#: how a dense weight matrix is stored: (out, in) (seed 004, PyTorch) or (in, out) (seed 001, Keras)
WEIGHT_LAYOUTS = ("out_in", "in_out")
#: engines the oracle may use; ``fast`` (fastmath) is not a reference and is refused
ORACLE_ENGINES = ("loops", "literal", "numpy")
#: activation names accepted in a layer description, spelled as indexnet or PyTorch spells them
ACTIVATION_NAMES = {
    "identity": "identity", "relu": "relu", "leaky_relu": "leaky_relu", "leakyrelu": "leaky_relu",
    "sigmoid": "sigmoid", "tanh": "tanh", "softmax": "softmax", "softplus": "softplus",
    "log_softmax": "log_softmax", "logsoftmax": "log_softmax",
}
#: where the channels of an image are: NCHW with kernels (C_out, C_in, kh, kw) (PyTorch), or
#: NHWC with kernels (kh, kw, C_in, C_out) (HWIO: Keras, TensorFlow, JAX), flattened in (H, W, C) order
IMAGE_LAYOUTS = ("channels_first", "channels_last")


# ----------------------------------------------------------------------------- arrays
def to_samples_last(a: np.ndarray) -> np.ndarray:
    """Move the sample axis from first to last: ``(N, ...)`` -> ``(..., N)``, C-contiguous."""
    return np.ascontiguousarray(np.moveaxis(a, 0, -1))


def from_samples_last(a: np.ndarray) -> np.ndarray:
    """Move the sample axis from last to first: ``(..., N)`` -> ``(N, ...)``, C-contiguous."""
    return np.ascontiguousarray(np.moveaxis(a, -1, 0))


def _convert(layout: str, a: np.ndarray) -> np.ndarray:
    """An internal (samples-last) array in the caller's sample layout (a copy)."""
    return from_samples_last(a) if layout == "samples_first" else np.array(a, order="C", copy=True)


# ------------------------------------------------------------------ layer descriptions
def _int_pair(name: str, value) -> tuple[int, int]:
    """An int or a pair of ints, as PyTorch's ``kernel_size`` / ``stride`` / ``padding``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    try:
        a, b = value
        return int(a), int(b)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected an int or a pair of ints, got {value!r}") from None


def _square(name: str, value) -> int:
    """indexnet's strides, paddings and pooling windows are the same along both axes."""
    a, b = _int_pair(name, value)
    if a != b:
        raise ValueError(f"{name}: expected the same value along H and W (indexnet supports square ones), got {value!r}")
    return a


#: what each description option may be: the values indexnet computes (anything else is refused,
#: naming the option, rather than silently computing another function); None: any value
#: checked elsewhere (sizes, checked against the parameters)
def _is(*allowed):
    return lambda v: any(v is a or (not isinstance(v, bool) and not isinstance(a, bool) and v == a) or
                         (isinstance(v, (tuple, list)) and all(x == a for x in v)) for a in allowed)


_ANY = None
_OPTIONS = {
    "linear": {"in_features": _ANY, "out_features": _ANY, "bias": _is(True)},
    "conv2d": {"in_channels": _ANY, "out_channels": _ANY, "kernel_size": _ANY, "stride": _ANY, "padding": _ANY,
               "pad": _ANY, "dilation": _is(1), "groups": _is(1), "padding_mode": _is("zeros"), "bias": _is(True)},
    "maxpool2d": {"kernel_size": _ANY, "stride": _ANY, "padding": _is(0), "dilation": _is(1),
                  "ceil_mode": _is(False), "return_indices": _is(False)},
    "avgpool2d": {"kernel_size": _ANY, "stride": _ANY, "padding": _is(0), "ceil_mode": _is(False),
                  "count_include_pad": _is(True, False), "divisor_override": _is(None)},
    "flatten": {"start_dim": _is(1), "end_dim": _is(-1)},
    "leaky_relu": {"negative_slope": _ANY, "alpha": _ANY, "inplace": _is(True, False)},
    "relu": {"inplace": _is(True, False)},
    "softmax": {"dim": _is(1, -1, None)},
    "log_softmax": {"dim": _is(1, -1, None)},
}


def _entry_type(k: int, entry) -> tuple[str, dict]:
    """Normalise a description entry to ``(type, options)``; unknown options and values
    indexnet does not compute are refused, naming them."""
    if isinstance(entry, str):
        entry = {"type": entry}
    elif isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str):
        entry = {"type": entry[0], "negative_slope": entry[1]}  # ("leaky_relu", 0.3), as oracle.dense takes it
    if not isinstance(entry, Mapping) or "type" not in entry:
        raise TypeError(
            f"layers[{k}]: expected an indexnet Layer, a name such as 'relu' or 'flatten', ('leaky_relu', slope), "
            f"or a dict with a 'type' key such as {{'type': 'linear'}}, got {entry!r}"
        )
    kind = str(entry["type"]).lower().replace("-", "_")
    kind = {"dense": "linear", "conv": "conv2d", "maxpool": "maxpool2d", "avgpool": "avgpool2d"}.get(kind, kind)
    kinds = ("linear", "conv2d", "maxpool2d", "avgpool2d", "flatten", *ACTIVATION_NAMES)
    check_choice(f"layers[{k}] type", kind, kinds)
    opts = {key: v for key, v in entry.items() if key != "type"}
    allowed = _OPTIONS.get(ACTIVATION_NAMES.get(kind, kind), {})
    for key, value in opts.items():
        if key not in allowed:
            raise ValueError(
                f"layers[{k}] ({kind}): unknown option {key!r}; expected "
                + (f"one of {', '.join(map(repr, allowed))}" if allowed else "none")
            )
        if allowed[key] is not None and not allowed[key](value):
            raise ValueError(f"layers[{k}] ({kind}) {key}={value!r}: not supported by indexnet (it computes the "
                             f"plain operation only)")
    return kind, opts


def _slope(where: str, value) -> float:
    """A leaky-ReLU slope: a finite real number."""
    return check_real(where, value)


def _check_option(k: int, opts: dict, key: str, actual) -> None:
    """A size given in the description agrees with the one read from the parameters."""
    if key in opts and opts[key] is not None and _int_pair(key, opts[key]) != _int_pair(key, actual):
        raise ValueError(f"layers[{k}] {key}: the parameters give {actual!r}, the description says {opts[key]!r}")


def parse_layers(layers: Sequence, params: list[tuple[np.ndarray, np.ndarray]]) -> tuple[list[Layer], list[str]]:
    """Turn a PyTorch-like description into indexnet layers (see :func:`_parse`).

    Returns
    -------
    layers : list of Layer
    torch_names : list of str
        The entry index of each returned layer (its module index in the Sequential).
    """
    parsed, names, (_, _, log_head) = _parse(layers, params)
    if log_head:
        raise ValueError("layers: log_softmax ends a description for the oracle's NLLLoss only")
    return parsed, names


def _parse(layers: Sequence, params: list[tuple[np.ndarray, np.ndarray]]) -> tuple[list[Layer], list[str], list]:
    """Turn a PyTorch-like description into indexnet layers.

    Each entry is an indexnet :class:`~indexnet.nn.layers.base.Layer` (used as is), a name
    (``"relu"``, ``"flatten"``, ``"linear"``, ...) or a dict with a ``type`` and PyTorch's
    option names: ``linear`` (``out_features``), ``conv2d`` (``out_channels``,
    ``kernel_size``, ``stride``, ``padding``), ``maxpool2d`` / ``avgpool2d``
    (``kernel_size``, ``stride``), ``flatten``, and activations (``relu``, ``leaky_relu``
    with ``negative_slope``, ``sigmoid``, ``tanh``, ``softmax``, ``identity``). Sizes
    are read from ``params`` (already ``(out, in)`` / ``(C_out, C_in, kh, kw)``); sizes
    given in the description are checked against them. indexnet fuses an activation into
    the linear or conv layer before it, so an activation must follow one.

    Returns
    -------
    layers : list of Layer
    torch_names : list of str
        The entry index of each returned layer (its module index in the Sequential).
    modules : (list, tuple, bool)
        The entry index of the activation fused into each layer (None for none); the
        identity entries as ``(entry index, layer position, "X" | "Z" | "A")``: what each
        passes on; whether the description ends in log_softmax (for NLLLoss).
    """
    out: list[Layer] = []
    names: list[str] = []
    acts: list = []
    identities: list = []  # (entry index, position of the layer whose output it passes on, -1: X)
    log_head = False
    next_param = 0
    for k, entry in enumerate(layers):
        if isinstance(entry, Layer):
            out.append(entry)
            names.append(str(k))
            acts.append(None)
            next_param += bool(entry.param_names)
            continue
        kind, opts = _entry_type(k, entry)
        if kind in ("linear", "conv2d"):
            if next_param >= len(params):
                raise ValueError(f"params: expected a (weight, bias) pair for layers[{k}] ({kind}), got only {len(params)} pair(s)")
            w = params[next_param][0]
            next_param += 1
            if kind == "linear":
                _check_option(k, opts, "out_features", w.shape[0])
                _check_option(k, opts, "in_features", w.shape[1])
                out.append(Dense(int(w.shape[0])))
            else:
                _check_option(k, opts, "out_channels", w.shape[0])
                _check_option(k, opts, "in_channels", w.shape[1])
                _check_option(k, opts, "kernel_size", tuple(w.shape[2:]))
                padding = opts.get("padding", opts.get("pad", 0))
                padding = 0 if padding == "valid" else padding
                out.append(Conv2D(int(w.shape[0]), tuple(int(s) for s in w.shape[2:]),
                                  stride=_square(f"layers[{k}] stride", opts.get("stride", 1)),
                                  pad=_square(f"layers[{k}] padding", padding)))
            names.append(str(k))
            acts.append(None)
        elif kind in ("maxpool2d", "avgpool2d"):
            if _square(f"layers[{k}] padding", opts.get("padding", 0)) != 0:
                raise ValueError(f"layers[{k}] padding: expected 0 (indexnet pools without padding), got {opts['padding']!r}")
            size = _square(f"layers[{k}] kernel_size", opts.get("kernel_size", 2))
            stride = opts.get("stride")
            cls = MaxPool2D if kind == "maxpool2d" else AvgPool2D
            out.append(cls(size, None if stride is None else _square(f"layers[{k}] stride", stride)))
            names.append(str(k))
            acts.append(None)
        elif kind == "flatten":
            out.append(Flatten())
            names.append(str(k))
            acts.append(None)
        else:
            act = ACTIVATION_NAMES[kind]
            if act == "identity":
                identities.append((str(k), len(out) - 1))
                continue
            if act == "log_softmax":  # NLLLoss's input: softmax fused into the layer, ln taken by the loss (L5)
                prev = out[-1] if out else None
                if k != len(layers) - 1 or not isinstance(prev, Dense) or prev.activation != "identity":
                    raise ValueError(f"layers[{k}]: log_softmax is supported as the last entry, right after a linear "
                                     f"entry, with loss='NLLLoss'")
                out[-1] = Dense(prev.units, "softmax", alpha=prev.alpha)
                acts[-1] = str(k)
                log_head = True
                continue
            alpha = _slope(f"layers[{k}] negative_slope", opts.get("negative_slope", opts.get("alpha", 0.01)))
            prev = out[-1] if out else None
            if isinstance(prev, (Dense, Conv2D)) and prev.activation == "identity" and acts[-1] is None \
                    and not (act == "softmax" and isinstance(prev, Conv2D)):
                fields = {f: getattr(prev, f) for f in prev.__dataclass_fields__}
                out[-1] = type(prev)(**{**fields, "activation": act, "alpha": alpha})  # fused, as indexnet computes
                acts[-1] = str(k)
            else:  # after pooling, flatten, another activation, or first: a layer of its own
                out.append(Activation(act, alpha))
                names.append(str(k))
                acts.append(None)
    if next_param != len(params):
        raise ValueError(
            f"params: expected {next_param} (weight, bias) pair(s), one per linear/conv2d entry, got {len(params)}"
        )
    if not out:
        raise ValueError("layers: expected at least one layer, got none")
    passes = tuple((key, pos, "X" if pos < 0 else "Z" if acts[pos] is not None and int(acts[pos]) > int(key) else "A")
                   for key, pos in identities)
    return out, names, (acts, passes, log_head)


def torch_indices(layers: Sequence[Layer]) -> list[str]:
    """Module index of each indexnet layer in its equivalent ``torch.nn.Sequential``.

    The equivalent Sequential has one module per layer, followed by one activation
    module for a linear or conv layer whose activation is not the identity.
    """
    names, k = [], 0
    for layer in layers:
        names.append(str(k))
        k += 1 + (getattr(layer, "activation", "identity") != "identity")
    return names


def _activation_indices(layers: Sequence[Layer]) -> list:
    """Module index of each layer's activation in the equivalent Sequential (None for none)."""
    return [None if getattr(layer, "activation", "identity") == "identity" else str(int(t) + 1)
            for layer, t in zip(layers, torch_indices(layers))]


# ---------------------------------------------------------------------------- params
def _pairs(params) -> list[tuple[Any, Any]]:
    """``params`` as a list of (weight, bias): from a sequence of pairs, or from a mapping
    with state_dict keys ``"<index>.weight"`` / ``"<index>.bias"``."""
    if isinstance(params, Mapping):
        prefixes = sorted({key.rsplit(".", 1)[0] for key in params}, key=lambda p: (len(p), p))
        pairs = []
        for p in prefixes:
            if f"{p}.weight" not in params or f"{p}.bias" not in params:
                raise ValueError(f"params: expected both '{p}.weight' and '{p}.bias', got keys {sorted(params)}")
            pairs.append((params[f"{p}.weight"], params[f"{p}.bias"]))
        return pairs
    pairs = list(params)
    for k, pair in enumerate(pairs):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"params[{k}]: expected a (weight, bias) pair, got {type(pair).__name__}")
    return pairs


@dataclass(frozen=True)
class _Params:
    """The parameters in indexnet's layouts, and what it takes to give gradients back in the caller's."""

    pairs: list          # (W (out, in) or K (C_out, C_in, kh, kw), b (out,)), float64
    bias_shapes: list    # the caller's shape of each bias
    labels: list         # (weight label, bias label) for error messages
    given_shapes: list   # the caller's shape of each weight


def _internal_params(pairs, weight_layout: str, image_layout: str = "channels_first",
                     labels=("weights[{k}]", "biases[{k}]")) -> _Params:
    """float64 copies; dense weights turned to (out, in), HWIO kernels to (C_out, C_in, kh, kw);
    biases of shape (out,), (1, out) or (out, 1) read as (out,); shapes checked in the caller's terms.

    ``labels`` name the weight and the bias of pair k in error messages.
    """
    out, bias_shapes, names, shapes = [], [], [], []
    for k, (w, b) in enumerate(pairs):
        wname, bname = (label.format(k=k) for label in labels)
        W = as_float64(wname, w)
        bias = as_float64(bname, b)
        shapes.append(W.shape)
        if W.ndim == 2 and weight_layout == "in_out":
            W = np.ascontiguousarray(W.T)
        elif W.ndim == 4 and image_layout == "channels_last":
            W = np.ascontiguousarray(W.transpose(3, 2, 0, 1))  # (kh, kw, C_in, C_out) -> (C_out, C_in, kh, kw)
        if W.ndim not in (2, 4):
            kernel = "(kh, kw, C_in, C_out)" if image_layout == "channels_last" else "(C_out, C_in, kh, kw)"
            raise ValueError(
                f"{wname}: expected a 2-D dense matrix ({weight_layout.replace('_', ', ')}) or a 4-D "
                f"kernel {kernel}, got shape {W.shape}"
            )
        n_out = W.shape[0]
        if bias.shape not in ((n_out,), (1, n_out), (n_out, 1)):
            raise ValueError(f"{bname}: expected shape ({n_out},), (1, {n_out}) or ({n_out}, 1) (one per output of "
                             f"{wname}), got {bias.shape}")
        bias_shapes.append(bias.shape)
        out.append((W, np.ascontiguousarray(bias.reshape(n_out))))
        names.append((wname, bname))
    return _Params(out, bias_shapes, names, shapes)


# --------------------------------------------------------------------------- arrays in and out
def _flat_order(shape: tuple) -> np.ndarray:
    """For a (C, H, W) image flattened channels last: position q of the caller's (H, W, C) order
    holds indexnet's (C, H, W) row ``order[q]``."""
    C, H, W = shape
    return np.arange(C * H * W).reshape(C, H, W).transpose(1, 2, 0).ravel()


def _to_internal(a: np.ndarray, layout: str, image_layout: str, order=None) -> np.ndarray:
    """A caller array (samples first or last, channels first or last) as indexnet's samples
    last, channels first (C-contiguous copy)."""
    if a.ndim == 4 and image_layout == "channels_last":
        a = a.transpose(3, 1, 2, 0) if layout == "samples_first" else a.transpose(2, 0, 1, 3)
        return np.ascontiguousarray(a)
    a = to_samples_last(a) if layout == "samples_first" else np.array(a, order="C", copy=True)
    if order is not None:
        internal = np.empty_like(a)
        internal[order] = a
        a = internal
    return a


def _from_internal(a: np.ndarray, layout: str, image_layout: str, order=None) -> np.ndarray:
    """An internal array in the caller's layouts (a copy); inverse of :func:`_to_internal`."""
    if a.ndim == 4 and image_layout == "channels_last":
        a = a.transpose(3, 1, 2, 0) if layout == "samples_first" else a.transpose(1, 2, 0, 3)
        return np.ascontiguousarray(a)
    if order is not None:
        a = a[order]
    return _convert(layout, a)


def _row_orders(layers: Sequence[Layer], shapes: list, image_layout: str) -> list:
    """For channels last: the (H, W, C) flatten order of each layer's flat output rows (None
    where the rows are units, or for channels first)."""
    orders, current = [], None
    for layer, shape in zip(layers, shapes[:-1]):
        if image_layout == "channels_last" and isinstance(layer, Flatten) and len(shape) == 3:
            current = _flat_order(shape)
        elif not isinstance(layer, Activation):
            current = None
        orders.append(current)
    return orders


# --------------------------------------------------------------------------- targets
def _targets(Y: Any, argname: str, head: Head | None, out_shape: tuple, layout: str) -> np.ndarray:
    """Y (or G) as float64 in the caller's layout: integer class labels ``(N,)`` become one-hot
    (cross-entropies), a vector for a single output gets its second axis."""
    if Y is None:
        raise ValueError(f"{argname}: expected the targets of loss {head.name!r}, got None")
    raw = Y.detach().cpu().numpy() if hasattr(Y, "detach") else np.asarray(Y)
    out_size = prod(out_shape)
    if head is not None and head.classes and raw.ndim == 1 and raw.dtype.kind in "iu":
        if raw.size and (raw.min() < 0 or raw.max() >= out_size):
            raise ValueError(f"{argname}: expected class labels in [0, {out_size - 1}], got range [{raw.min()}, {raw.max()}]")
        onehot = np.eye(out_size)[:, raw]  # (S_L, N)
        return np.ascontiguousarray(onehot.T if layout == "samples_first" else onehot)
    Yf = as_float64(argname, raw)
    if Yf.ndim == 1 and out_size == 1:
        Yf = Yf.reshape((-1, 1) if layout == "samples_first" else (1, -1))
    return Yf


# ----------------------------------------------------------------------- the reading
def _first_layer_fits(first: Layer, first_params: tuple, sample_shape: tuple, image_layout: str):
    """Whether one sample's shape fits the first layer, and the shape of X it needs (text,
    ``N`` standing for the sample count), in the caller's channel order."""
    if isinstance(first, Dense):
        need = (first_params[0].shape[1],)
        return tuple(sample_shape) == need, need
    if isinstance(first, Conv2D):
        C = first_params[0].shape[1]
        need = ("H", "W", C) if image_layout == "channels_last" else (C, "H", "W")
        return len(sample_shape) == 3 and sample_shape[0] == C, need
    return True, ("...",)


def _shape_text(sample: tuple, layout: str) -> str:
    shape = ("N", *sample) if layout == "samples_first" else (*sample, "N")
    return "(" + ", ".join(map(str, shape)) + ")"


@dataclass
class _Prepared:
    net: Network
    X: np.ndarray        # internal
    Y: np.ndarray        # internal targets, or G
    orders: list         # row order of each layer's output (channels last), None otherwise
    w_orders: list       # row order of each dense layer's input, None otherwise


def _prepare(layers, params: _Params, head: Head | None, X: np.ndarray, Y: Any, layout: str,
             image_layout: str) -> _Prepared:
    """Read X and Y (or G) under one layout and build the float64 network; ValueError naming
    the argument at fault if they do not fit."""
    if X.ndim < 2:
        raise ValueError(f"X: expected at least 2 axes (samples and features), got shape {X.shape}")
    Xsl = _to_internal(X, layout, image_layout)
    sample_shape, N = Xsl.shape[:-1], Xsl.shape[-1]
    by_layer, labels, k = [], [], 0
    for layer in layers:
        n = 1 if layer.param_names else 0
        by_layer.append(params.pairs[k] if n else ())
        labels.append(k if n else None)
        k += n
    shown = X.shape[1:] if layout == "samples_first" else X.shape[:-1]
    reading = f"layout={layout!r} reads X of shape {X.shape} as N = {N} sample(s) of shape {tuple(shown)}"
    ok, need = _first_layer_fits(layers[0], by_layer[0], sample_shape, image_layout)
    if not ok:
        raise ValueError(f"X: {reading}; the first layer ({layers[0].spec()}) needs X of shape {_shape_text(need, layout)}")
    shapes = [tuple(sample_shape)]
    for l, layer in enumerate(layers, start=1):
        try:
            shapes.append(tuple(layer.output_shape(shapes[-1])))
        except ValueError as err:
            raise ValueError(f"X: {reading}; layer {l} ({layer.spec()}) does not take its input of shape "
                             f"{shapes[-1]}: {err}") from None
        if layer.param_names:
            want = layer.param_shapes(shapes[-2])
            wname, bname = params.labels[labels[l - 1]]
            W = by_layer[l - 1][0]
            if W.shape != tuple(want[0]):
                given = params.given_shapes[labels[l - 1]]
                raise ValueError(
                    f"{wname}: layer {l} ({layer.spec()}) takes an input of shape {shapes[-2]}, so its weight must be "
                    f"{tuple(want[0])} in indexnet's (out, in) / (C_out, C_in, kh, kw) terms; got shape {given}"
                )
    orders = _row_orders(layers, shapes, image_layout)
    w_orders = [orders[l - 1] if l and isinstance(layer, Dense) else None for l, layer in enumerate(layers)]
    internal = []
    for layer, p, wo in zip(layers, by_layer, w_orders):
        if wo is not None:  # a dense layer reading a channels-last flatten: columns to indexnet's (C, H, W) order
            Wi = np.empty_like(p[0])
            Wi[:, wo] = p[0]
            p = (Wi, p[1])
        internal.append(p)
    base = head.base if head is not None else "mse"  # with grad_output no loss is evaluated
    net = Network(layers, sample_shape, base, dtype=np.float64, params=internal)
    argname = "Y" if head is not None else "grad_output"
    Yc = _targets(Y, argname, head, net.output_shape, layout)
    out_caller = _from_internal(np.empty((*net.output_shape, N)), layout, image_layout).shape
    if Yc.shape != out_caller:
        raise ValueError(f"{argname}: layout={layout!r} with N = {N} needs {argname} of shape {out_caller} "
                         f"(the network's output), got {Yc.shape}")
    Ysl = _to_internal(Yc, layout, image_layout, orders[-1])
    if head is not None:
        check_targets(head, Ysl)
    elif not np.all(np.isfinite(Ysl)):
        raise ValueError("grad_output: expected finite values, got NaN or inf")
    net.check_inputs(Xsl)
    return _Prepared(net, Xsl, Ysl, orders, w_orders)


def _choose_layout(layout: str, layers, params, head, X: np.ndarray, Y: Any, image_layout: str):
    """Resolve ``layout`` (possibly ``"auto"``) and prepare the pass under it."""
    check_choice("layout", layout, (*LAYOUTS, "auto"))
    if layout != "auto":
        return layout, _prepare(layers, params, head, X, Y, layout, image_layout)
    fits, reasons = {}, {}
    for reading in LAYOUTS:
        try:
            fits[reading] = _prepare(layers, params, head, X, Y, reading, image_layout)
        except ValueError as err:
            reasons[reading] = str(err)
    if len(fits) == 1:
        (reading, prepared), = fits.items()
        return reading, prepared
    Yshape = getattr(Y, "shape", None)
    if fits:
        readings = "; ".join(
            f"{r}: N = {fits[r].X.shape[-1]} sample(s) of shape {fits[r].X.shape[:-1]}" for r in LAYOUTS
        )
        raise ValueError(
            f"layout='auto': both readings fit X of shape {X.shape} and Y of shape {Yshape} ({readings}); "
            f"pass layout='samples_first' (X is (N, features...)) or layout='samples_last' (X is (features..., N))"
        )
    raise ValueError(
        f"layout='auto': neither reading fits X of shape {X.shape} and Y of shape {Yshape}. "
        + " ".join(f"{r} would need: {reasons[r]}." for r in LAYOUTS)
    )


# -------------------------------------------------------------------------- the head
def _resolve_head(loss, Y, grad_output, reduction) -> tuple[Head | None, str, Any]:
    """The loss head (None for grad_output), its reduction, and what plays Y."""
    if grad_output is not None:
        if loss is not None or Y is not None:
            raise ValueError(f"grad_output: J = Σ G ⊙ A^(L) replaces the loss: pass loss=None and Y=None, "
                             f"got loss={loss!r} and Y of type {type(Y).__name__}")
        if reduction is not None:
            raise ValueError(f"reduction: grad_output has no reduction, got {reduction!r}")
        return None, "sum", grad_output
    if loss is None:
        raise ValueError("loss: expected a loss name (e.g. 'mse', 'CrossEntropyLoss') or grad_output=G, got None")
    head = get_head(loss)
    return head, check_reduction(head, reduction), Y


def _fit_head(head: Head | None, layers: list, log_head: bool) -> list:
    """The layers as the head needs them: a logits head's softmax / sigmoid goes into the last
    layer; a head on probabilities needs the model to end in that activation. Refusals name
    the loss."""
    last = layers[-1]
    act = getattr(last, "activation", None)
    if head is None:
        if log_head:
            raise ValueError("grad_output: a description ending in log_softmax goes with loss='NLLLoss'")
        return layers
    need = head.output_activation
    if log_head != (head.input == "log_probabilities"):
        raise ValueError(f"loss: {head.name!r} " + ("needs a model that ends in LogSoftmax (log_softmax)" if not log_head
                         else "does not take log-probabilities; a model ending in LogSoftmax goes with 'NLLLoss'"))
    if head.input == "logits":
        if not isinstance(last, (Dense, Conv2D)) or act != "identity" or (need == "softmax" and not isinstance(last, Dense)):
            raise ValueError(
                f"loss: {head.name!r} takes logits, so the model must end in a linear layer without activation "
                f"({'or a conv2d, ' if need == 'sigmoid' else ''}the {need} is inside the loss), got {last.spec()!r}; "
                f"for a model that ends in a {need} use {head.base!r}"
            )
        fields = {f: getattr(last, f) for f in last.__dataclass_fields__}
        return [*layers[:-1], type(last)(**{**fields, "activation": need})]
    if need is not None and act != need:
        hint = {"CrossEntropyLoss": "softmax", "BCEWithLogitsLoss": "sigmoid"}
        logits = [n for n, a in hint.items() if a == need]
        raise ValueError(
            f"loss: {head.name!r} needs the model to end in a {need} (its value is computed stably from that "
            f"layer's Z), got {last.spec()!r}" + (f"; for a model that ends in logits use {logits[0]!r}" if logits else "")
        )
    return layers


# -------------------------------------------------------------------------- the pass
def _run(layers, params: _Params, loss, X, Y, *, layout: str, weight_layout: str, engine: str,
         torch_names: Sequence[str], activation_modules: Sequence, identity_modules: tuple = (),
         reduction=None, grad_output=None, image_layout: str = "channels_first", log_head: bool = False,
         bounds=None, bound_method: str = "worst_case", lam: float = 4.0) -> OracleResult:
    """Resolve the layout and the head, run one exact pass, and return every array in the caller's
    layouts (with ``bounds``: their rounding bounds and kink masks too, converted the same way)."""
    check_choice("weight_layout", weight_layout, WEIGHT_LAYOUTS)
    check_choice("image_layout", image_layout, IMAGE_LAYOUTS)
    check_choice("engine", engine, ORACLE_ENGINES)
    head, reduction, target = _resolve_head(loss, Y, grad_output, reduction)
    precision = None if bounds is None else as_precision(bounds, bound_method, lam)
    layers = _fit_head(head, list(layers), log_head)
    Xf = as_float64("X", X)
    layout, prep = _choose_layout(layout, layers, params, head, Xf, target, image_layout)
    net = prep.net
    caches = net.forward(prep.X, engine, check=False)
    last = caches[-1]
    if head is None:
        G = prep.Y
        J, Delta, H_out, c = float(np.sum(G * last.A)), G.copy(), None, 1.0
    else:
        J, Delta, H_out = evaluate(head, reduction, last.Z, last.A, prep.Y, engine)
        c = head.factor(reduction, last.A.shape[-1], prod(last.A.shape[:-1]))
    bp = net.backward_from(prep.X, caches, J, Delta, engine, H_out=H_out)

    def back(a, l):
        return _from_internal(a, layout, image_layout, prep.orders[l])

    def package(q, **extra) -> OracleResult:
        """A pass (Backprop), its bounds or its kink masks (Bounds) in the caller's layouts."""
        grads = []
        for l, g in enumerate(q.grads):
            out = {}
            for p, v in g.items():
                if p == "W" and prep.w_orders[l] is not None:
                    v = v[:, prep.w_orders[l]]
                if p == "W" and weight_layout == "in_out":
                    v = v.T
                elif p == "K" and image_layout == "channels_last":
                    v = v.transpose(2, 3, 1, 0)
                elif p == "b":
                    v = v.reshape(params.bias_shapes[sum(bool(x.param_names) for x in net.layers[:l])])
                out[p] = np.ascontiguousarray(v).copy()
            grads.append(out)
        L = len(net.layers)
        return OracleResult(
            loss=q.loss if isinstance(q.loss, (bool, np.bool_)) else float(q.loss),
            X=_from_internal(q.X, layout, image_layout), dX=_from_internal(q.dX, layout, image_layout),
            Z=[back(q.Z[l], l) for l in range(L)], A=[back(q.A[l], l) for l in range(L)],
            Delta=[back(q.Delta[l], l) for l in range(L)], H=[back(q.H[l], l) for l in range(L)],
            grads=grads,
            layer_names=tuple(f"layer {l}" for l in range(1, L + 1)),
            torch_names=tuple(torch_names), activation_modules=tuple(activation_modules),
            identity_modules=tuple(identity_modules),
            layout=layout, weight_layout=weight_layout, image_layout=image_layout,
            loss_name="grad_output" if head is None else head.name, reduction=reduction,
            head_input="grad_output" if head is None else head.input, loss_factor=c,
            Y=back(prep.Y, L - 1), **extra,
        )

    if precision is None:
        return package(bp)
    _check_bounds_head(head, reduction, H_out, prep)
    B = network_bounds(net, bp, prep.X, prep.Y, precision)
    return package(bp, bounds=package(B), kink=package(B.kink), precision=precision.name,
                   bound_method=precision.method)


def _check_bounds_head(head: Head | None, reduction: str, H_out, prep) -> None:
    """The rounding bounds (derivations/rounding.md) follow indexnet's seed losses with their own
    reduction (and PyTorch's names where those are the same formula, N·S = N), the fused output
    gradient where the loss has one, and channels-first images."""
    if head is None:
        raise ValueError("bounds: not available with grad_output (the bounds follow a loss); pass bounds=None")
    S = prod(prep.net.output_shape)
    if reduction != head.default_reduction() or (head.per_element and S != 1):
        raise ValueError(f"bounds: available for the loss's own reduction ({head.base!r}: "
                         f"{head.default_reduction()!r} over samples) only, got loss={head.name!r}, "
                         f"reduction={reduction!r}; pass bounds=None")
    if head.output_activation is not None and H_out is None:
        raise ValueError("bounds: the cross-entropy bounds need target columns that sum to 1 (the fused output "
                         "gradient, L7); pass bounds=None for these soft labels")
    if any(o is not None for o in prep.orders):
        raise ValueError("bounds: not available for a channels-last flatten; pass bounds=None")


def _activation(k: int, spec) -> tuple[str, float]:
    """An activation of :func:`dense`, spelled as in :func:`network` descriptions: ``"tanh"``,
    ``("leaky_relu", 0.2)`` or ``{"type": "leaky_relu", "negative_slope": 0.2}``."""
    if isinstance(spec, (list, tuple)) and len(spec) == 2:
        spec = tuple(spec)
    try:
        kind, opts = _entry_type(k, spec)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"activations[{k}]: expected one of {', '.join(map(repr, ACTIVATION_NAMES))}, (name, slope) or "
            f"{{'type': name, ...}}, got {spec!r}" + ("" if "type:" in str(err) else f" ({err})")
        ) from None
    if kind not in ACTIVATION_NAMES:
        raise ValueError(f"activations[{k}]: expected an activation such as 'tanh' or ('leaky_relu', 0.2), got {spec!r}")
    alpha = _slope(f"activations[{k}] negative_slope", opts.get("negative_slope", opts.get("alpha", 0.01)))
    return ACTIVATION_NAMES[kind], alpha


def dense(
    weights: Sequence,
    biases: Sequence,
    activations: Sequence,
    loss: str | None,
    X,
    Y=None,
    *,
    reduction: str | None = None,
    grad_output=None,
    layout: str = "samples_first",
    weight_layout: str = "out_in",
    engine: str = "loops",
    bounds: str | None = None,
    bound_method: str = "worst_case",
    lam: float = 4.0,
) -> OracleResult:
    """Reference loss, gradients and intermediates of a dense network, in your layouts.

    Every input is copied to float64 explicitly (float16/32/64, integer and boolean
    arrays, lists and CPU tensors are accepted), and the pass runs in float64 with the
    exact ``loops`` build, whose results do not depend on the number of threads.

    Parameters
    ----------
    weights : sequence of array, length L
        W^(l) of each layer, ``(out, in)`` or ``(in, out)`` as ``weight_layout`` says.
    biases : sequence of array, length L
        b^(l), shape ``(out,)``, ``(1, out)`` or ``(out, 1)``; its gradient comes back in
        the same shape.
    activations : sequence, length L
        Per layer ``"identity"``, ``"relu"``, ``"leaky_relu"``, ``"sigmoid"``, ``"tanh"``
        or ``"softmax"`` (``"log_softmax"`` last, with ``NLLLoss``); a leaky ReLU's slope
        as ``("leaky_relu", 0.2)`` or ``{"type": "leaky_relu", "negative_slope": 0.2}``
        (default 0.01), the same spellings as :func:`network` takes.
    loss : str or None
        indexnet's seed losses ``"mse"``, ``"half_se"``, ``"euclidean"``,
        ``"cross_entropy"`` (softmax output), ``"binary_cross_entropy"`` (sigmoid
        output), or PyTorch's ``"MSELoss"``, ``"CrossEntropyLoss"`` (logits: the last
        activation is ``"identity"``), ``"NLLLoss"`` (after ``"log_softmax"``),
        ``"BCELoss"``, ``"BCEWithLogitsLoss"``, each meaning exactly what PyTorch
        computes; see :mod:`indexnet.oracle.heads` for every formula and factor. None
        with ``grad_output``.
    X : array
        Inputs: ``(N, S_0)`` for ``samples_first``, ``(S_0, N)`` for ``samples_last``.
    Y : array
        Targets in the same sample layout as X, ``(N, S_L)`` or ``(S_L, N)``: for the
        cross-entropies one-hot rows, class probabilities (soft labels) or integer class
        labels ``(N,)``; for one output also a vector ``(N,)``.
    reduction : {"mean", "sum"} or None
        How samples combine (for PyTorch's names, elements: ``"mean"`` divides by N·S_L
        where PyTorch does). None keeps the loss's own (``"sum"`` for ``half_se``,
        ``"mean"`` otherwise).
    grad_output : array, optional
        G, shaped like the output: the oracle then computes J = Σ G ⊙ A^(L), so that
        Δ^(L) = G, as a layer's own test does with an upstream gradient. Pass
        ``loss=None`` and no Y.
    layout : {"samples_first", "samples_last", "auto"}
        Where the samples are. ``auto`` decides from the shapes (the axis of X that
        matches the first layer's input size, and the shape of Y) and raises ValueError
        when both readings fit or neither does.
    weight_layout : {"out_in", "in_out"}
        ``out_in`` (seed 004, PyTorch: Z = W x + b) or ``in_out`` (seed 001, Keras:
        z = x W + b).
    engine : {"loops", "literal", "numpy"}
        Which form of the kernels to run; ``loops`` is the reference.
    bounds : {None, "float32", "float16", "bfloat16"}
        Also return, for every element of every quantity, how far a correct
        implementation in that precision may be from this float64 result
        (derivations/rounding.md): ``result.bounds`` (same structure as the result),
        ``result.kink`` (masks of the kink-sensitive elements, which have no bound).
        Check with ``assert_gradients_match(mine, result, dtype="float32")``. Available
        for a loss with its own reduction (not with ``grad_output``).
    bound_method : {"worst_case", "probabilistic"}
        ``worst_case`` holds for any summation order, always (use it when a failure must
        mean a bug); ``probabilistic`` is the much tighter model of Higham & Mary (2019)
        with parameter ``lam``, which can fail, rarely, on a correct implementation.
    lam : float
        λ of the probabilistic bound (each sum holds with probability ≥ 1 − 2e^(−λ²/2) under the model).

    Returns
    -------
    OracleResult
        ``loss``, ``grads`` (``[{"W", "b"}, ...]`` in ``weight_layout``), ``X``, ``dX``
        and Z, A, Delta (Δ = ∂J/∂A), H (= ∂J/∂Z) with layer l at ``[l-1]``, in ``layout``
        (see :mod:`indexnet.oracle.result`); with ``bounds``, also ``bounds``, ``kink``,
        ``precision`` and ``bound_method``.

    Raises
    ------
    ValueError
        Mismatched lengths or shapes (naming the argument, the expected and the actual
        shape), an undecidable ``layout="auto"``, or a loss whose output activation
        is missing (naming the loss).
    TypeError
        Non-numeric inputs.

    Examples
    --------
    >>> import numpy as np
    >>> from indexnet import oracle
    >>> W = [np.array([[1.0, -1.0]])]              # one neuron, two inputs, (out, in)
    >>> r = oracle.dense(W, [np.zeros(1)], ["identity"], "half_se",
    ...                  X=np.array([[2, 1]]), Y=np.array([[0]]))
    >>> r.loss, r.grads[0]["W"].tolist()
    (0.5, [[2.0, 1.0]])
    """
    check_choice("weight_layout", weight_layout, WEIGHT_LAYOUTS)
    weights, biases, activations = list(weights), list(biases), list(activations)
    if not weights:
        raise ValueError("weights: expected at least one weight matrix, got none")
    for name, seq in (("biases", biases), ("activations", activations)):
        if len(seq) != len(weights):
            raise ValueError(f"{name}: expected {len(weights)} (one per weight matrix), got {len(seq)}")
    params = _internal_params(list(zip(weights, biases)), weight_layout)
    for k, (W, _) in enumerate(params.pairs):
        if W.ndim != 2:
            raise ValueError(f"weights[{k}]: expected a 2-D matrix, got shape {params.given_shapes[k]}")
        if k and W.shape[1] != params.pairs[k - 1][0].shape[0]:
            raise ValueError(
                f"weights[{k}]: expected {params.pairs[k - 1][0].shape[0]} inputs (the outputs of weights[{k - 1}]) "
                f"with weight_layout={weight_layout!r}, got shape {params.given_shapes[k]}"
            )
    layers, log_head = [], False
    for k, ((W, _), spec) in enumerate(zip(params.pairs, activations)):
        act, alpha = _activation(k, spec)
        if act == "log_softmax":
            if k != len(weights) - 1:
                raise ValueError(f"activations[{k}]: log_softmax is supported on the last layer only (with NLLLoss)")
            act, log_head = "softmax", True
        layers.append(Dense(int(W.shape[0]), act, alpha=alpha))
    return _run(layers, params, loss, X, Y, layout=layout, weight_layout=weight_layout, engine=engine,
                torch_names=torch_indices(layers), activation_modules=_activation_indices(layers),
                reduction=reduction, grad_output=grad_output, log_head=log_head,
                bounds=bounds, bound_method=bound_method, lam=lam)


def network(
    layers: Sequence,
    params: Sequence | Mapping | None,
    loss: str | None,
    X,
    Y=None,
    *,
    reduction: str | None = None,
    grad_output=None,
    layout: str = "samples_first",
    weight_layout: str = "out_in",
    image_layout: str = "channels_first",
    engine: str = "loops",
    bounds: str | None = None,
    bound_method: str = "worst_case",
    lam: float = 4.0,
) -> OracleResult:
    """Reference values for a network with convolution, pooling, flatten and dense layers.

    Parameters
    ----------
    layers : sequence, or torch.nn.Sequential
        A ``torch.nn.Sequential`` itself (then ``params`` is None and its parameters are
        read, see :mod:`indexnet.oracle.describe`), or a PyTorch-like description, one entry
        per ``torch.nn.Sequential`` module, e.g.
        ``[{"type": "conv2d", "padding": 1}, "relu", {"type": "maxpool2d", "kernel_size": 2},
        "flatten", "linear", "softmax"]``; or indexnet layers (``Conv2D``, ``Dense``, ...).
        See :func:`_parse` for the entries and options; an option indexnet does not
        compute (``dilation=2``, ``groups``, ``bias=False``, ``ceil_mode=True``, a typo) is
        refused, naming it. An activation may follow any entry (after pooling or flatten
        it is a layer of its own). Sizes come from ``params``.
    params : sequence of (weight, bias), mapping, or None
        One pair per linear / conv2d entry, in order: kernels ``(C_out, C_in, kh, kw)``
        (``(kh, kw, C_in, C_out)`` with ``image_layout="channels_last"``), dense weights as
        ``weight_layout`` says, biases ``(out,)``, ``(1, out)`` or ``(out, 1)``. A mapping
        with ``state_dict`` keys (``"0.weight"``, ``"0.bias"``, ...) is accepted too.
    loss, Y, reduction, grad_output
        As in :func:`dense`. A network may end in a conv or pooling layer: the squared
        losses then sum over C×H×W per sample (``MSELoss`` divides by N·C·H·W).
    X : array
        ``samples_first``: images ``(N, C, H, W)`` (NCHW) or ``(N, H, W, C)`` (NHWC,
        ``image_layout="channels_last"``), or ``(N, S_0)``; ``samples_last``:
        ``(C, H, W, N)`` / ``(H, W, C, N)`` or ``(S_0, N)``. Copied to float64.
    layout, weight_layout, engine, bounds, bound_method, lam
        As in :func:`dense`.
    image_layout : {"channels_first", "channels_last"}
        ``channels_last``: images NHWC, kernels HWIO and a flatten in (H, W, C) order, as
        Keras, TensorFlow and JAX have them; every returned array follows suit.

    Returns
    -------
    OracleResult
        Every array in the caller's layouts.
    """
    check_choice("weight_layout", weight_layout, WEIGHT_LAYOUTS)
    check_choice("image_layout", image_layout, IMAGE_LAYOUTS)
    if hasattr(layers, "named_children"):  # a torch.nn.Sequential: read its modules and parameters
        if params is not None:
            raise ValueError("params: expected None when layers is a torch model (its parameters are used)")
        layers, params = describe(layers)
    if params is None:
        params = []
    pairs = _internal_params(_pairs(params), weight_layout, image_layout, ("params[{k}] weight", "params[{k}] bias"))
    parsed, names, (acts, identities, log_head) = _parse(list(layers), pairs.pairs)
    return _run(parsed, pairs, loss, X, Y, layout=layout, weight_layout=weight_layout, engine=engine,
                torch_names=names, activation_modules=acts, identity_modules=identities,
                reduction=reduction, grad_output=grad_output, image_layout=image_layout, log_head=log_head,
                bounds=bounds, bound_method=bound_method, lam=lam)
