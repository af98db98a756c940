"""The oracle's computation: the caller's layouts in, one exact float64 pass, the caller's layouts out.

Internally everything is samples last (``(S, N)``, ``(C, H, W, N)``) with weights
``(out, in)`` and kernels ``(C_out, C_in, kh, kw)``, and the pass is
:meth:`indexnet.nn.network.Network.backward` with the exact ``loops`` build (no fastmath,
``prange`` over output elements only, every reduction sequential), so the numbers do not
depend on the thread count. Inputs are copied to float64 first, whatever their dtype.
"""
from __future__ import annotations

from math import prod
from typing import Any, Mapping, Sequence

import numpy as np

from indexnet._validate import check_choice
from indexnet.nn.layers.base import Layer
from indexnet.nn.layers.conv import Conv2D
from indexnet.nn.layers.dense import Dense
from indexnet.nn.layers.flatten import Flatten
from indexnet.nn.layers.pooling import AvgPool2D, MaxPool2D
from indexnet.nn.losses import get_loss
from indexnet.nn.network import Network
from indexnet.oracle._arrays import as_float64
from indexnet.oracle.bounds import as_precision, network_bounds
from indexnet.oracle.describe import describe
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
}


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


def _entry_type(k: int, entry) -> tuple[str, dict]:
    """Normalise a description entry to ``(type, options)``."""
    if isinstance(entry, str):
        entry = {"type": entry}
    if not isinstance(entry, Mapping) or "type" not in entry:
        raise TypeError(
            f"layers[{k}]: expected an indexnet Layer, a name such as 'relu' or 'flatten', or a dict "
            f"with a 'type' key such as {{'type': 'linear'}}, got {entry!r}"
        )
    kind = str(entry["type"]).lower().replace("-", "_")
    kind = {"dense": "linear", "conv": "conv2d", "maxpool": "maxpool2d", "avgpool": "avgpool2d"}.get(kind, kind)
    kinds = ("linear", "conv2d", "maxpool2d", "avgpool2d", "flatten", *ACTIVATION_NAMES)
    check_choice(f"layers[{k}] type", kind, kinds)
    return kind, {key: v for key, v in entry.items() if key != "type"}


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
    parsed, names, _ = _parse(layers, params)
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
    modules : (list, tuple)
        The entry index of the activation fused into each layer (None for none), and the
        identity entries as ``(entry index, layer position, "X" | "Z" | "A")``: what each
        passes on.
    """
    out: list[Layer] = []
    names: list[str] = []
    acts: list = []
    identities: list = []  # (entry index, position of the layer whose output it passes on, -1: X)
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
            prev = out[-1] if out else None
            if not isinstance(prev, (Dense, Conv2D)) or prev.activation != "identity":
                what = "nothing" if prev is None else repr(prev.spec())
                raise ValueError(
                    f"layers[{k}]: activation {act!r} must follow a linear or conv2d entry without an "
                    f"activation (indexnet fuses σ into the layer before it); it follows {what}"
                )
            alpha = float(opts.get("negative_slope", opts.get("alpha", prev.alpha)))
            fields = {f: getattr(prev, f) for f in prev.__dataclass_fields__}
            out[-1] = type(prev)(**{**fields, "activation": act, "alpha": alpha})
            acts[-1] = str(k)
    if next_param != len(params):
        raise ValueError(
            f"params: expected {next_param} (weight, bias) pair(s), one per linear/conv2d entry, got {len(params)}"
        )
    if not out:
        raise ValueError("layers: expected at least one layer, got none")
    passes = tuple((key, pos, "X" if pos < 0 else "Z" if acts[pos] is not None and int(acts[pos]) > int(key) else "A")
                   for key, pos in identities)
    return out, names, (acts, passes)


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


def _internal_params(pairs, weight_layout: str, labels=("weights[{k}]", "biases[{k}]")) -> list:
    """float64 copies; dense weights turned to (out, in); shapes checked in the caller's terms.

    ``labels`` name the weight and the bias of pair k in error messages.
    """
    out = []
    for k, (w, b) in enumerate(pairs):
        wname, bname = (label.format(k=k) for label in labels)
        W = as_float64(wname, w)
        bias = as_float64(bname, b)
        if W.ndim == 2 and weight_layout == "in_out":
            W = np.ascontiguousarray(W.T)
        if W.ndim not in (2, 4):
            raise ValueError(
                f"{wname}: expected a 2-D dense matrix ({weight_layout.replace('_', ', ')}) or a 4-D "
                f"kernel (C_out, C_in, kh, kw), got shape {W.shape}"
            )
        if bias.shape != (W.shape[0],):
            raise ValueError(f"{bname}: expected shape ({W.shape[0]},) (one per output of {wname}), got {bias.shape}")
        out.append((W, bias))
    return out


# --------------------------------------------------------------------------- targets
def _targets(Y: Any, loss: str, out_size: int, layout: str) -> np.ndarray:
    """Y in the caller's layout, with integer class labels ``(N,)`` (cross-entropy) or a
    1-D vector for a single output expanded to 2-D first."""
    raw = Y.detach().cpu().numpy() if hasattr(Y, "detach") else np.asarray(Y)
    if raw.ndim == 1 and loss == "cross_entropy" and raw.dtype.kind in "iu":
        if raw.size and (raw.min() < 0 or raw.max() >= out_size):
            raise ValueError(f"Y: expected class labels in [0, {out_size - 1}], got range [{raw.min()}, {raw.max()}]")
        onehot = np.eye(out_size)[:, raw]  # (S_L, N)
        return np.ascontiguousarray(onehot.T if layout == "samples_first" else onehot)
    Yf = as_float64("Y", raw)
    if Yf.ndim == 1 and out_size == 1:
        Yf = Yf.reshape((-1, 1) if layout == "samples_first" else (1, -1))
    return Yf


# ----------------------------------------------------------------------- the reading
def _first_layer_fits(first: Layer, first_params: tuple, sample_shape: tuple) -> tuple[bool, str]:
    """Whether one sample's shape fits the first layer, and the shape of X it needs (text,
    ``N`` standing for the sample count)."""
    if isinstance(first, Dense):
        need = (first_params[0].shape[1],)
        return tuple(sample_shape) == need, need
    if isinstance(first, Conv2D):
        C = first_params[0].shape[1]
        return len(sample_shape) == 3 and sample_shape[0] == C, (C, "H", "W")
    return True, ("...",)


def _shape_text(sample: tuple, layout: str) -> str:
    shape = ("N", *sample) if layout == "samples_first" else (*sample, "N")
    return "(" + ", ".join(map(str, shape)) + ")"


def _prepare(layers, params, loss: str, X: np.ndarray, Y: Any, layout: str):
    """Read X and Y under one layout and build the float64 network; ValueError if they do not fit."""
    if X.ndim < 2:
        raise ValueError(f"X: expected at least 2 axes (samples and features), got shape {X.shape}")
    Xsl = to_samples_last(X) if layout == "samples_first" else X
    sample_shape, N = Xsl.shape[:-1], Xsl.shape[-1]
    params_by_layer, k = [], 0
    for layer in layers:
        n = 1 if layer.param_names else 0
        params_by_layer.append(params[k] if n else ())
        k += n
    reading = f"layout={layout!r} reads X of shape {X.shape} as N = {N} sample(s) of shape {tuple(sample_shape)}"
    ok, need = _first_layer_fits(layers[0], params_by_layer[0], sample_shape)
    if not ok:
        raise ValueError(f"X: {reading}; the first layer ({layers[0].spec()}) needs X of shape {_shape_text(need, layout)}")
    try:
        net = Network(layers, sample_shape, loss, dtype=np.float64, params=params_by_layer)
    except ValueError as err:
        raise ValueError(f"X: {reading}, which the network does not take: {err}") from None
    out_shape = net.output_shape
    Yc = _targets(Y, loss, prod(out_shape), layout)
    want = (N, *out_shape) if layout == "samples_first" else (*out_shape, N)
    if Yc.shape != want:
        raise ValueError(f"Y: layout={layout!r} with N = {N} needs Y of shape {want}, got {Yc.shape}")
    Ysl = to_samples_last(Yc) if layout == "samples_first" else Yc
    net.check_inputs(Xsl, Ysl)
    return net, Xsl, Ysl


def _choose_layout(layout: str, layers, params, loss, X: np.ndarray, Y: Any):
    """Resolve ``layout`` (possibly ``"auto"``) and prepare the pass under it."""
    check_choice("layout", layout, (*LAYOUTS, "auto"))
    if layout != "auto":
        return (layout, *_prepare(layers, params, loss, X, Y, layout))
    fits, reasons = {}, {}
    for reading in LAYOUTS:
        try:
            fits[reading] = _prepare(layers, params, loss, X, Y, reading)
        except ValueError as err:
            reasons[reading] = str(err)
    if len(fits) == 1:
        (reading, prepared), = fits.items()
        return (reading, *prepared)
    Yshape = getattr(Y, "shape", None)
    if fits:
        readings = "; ".join(
            f"{r}: N = {fits[r][1].shape[-1]} sample(s) of shape {fits[r][1].shape[:-1]}" for r in LAYOUTS
        )
        raise ValueError(
            f"layout='auto': both readings fit X of shape {X.shape} and Y of shape {Yshape} ({readings}); "
            f"pass layout='samples_first' (X is (N, features...)) or layout='samples_last' (X is (features..., N))"
        )
    raise ValueError(
        f"layout='auto': neither reading fits X of shape {X.shape} and Y of shape {Yshape}. "
        + " ".join(f"{r} would need: {reasons[r]}." for r in LAYOUTS)
    )


# -------------------------------------------------------------------------- the pass
def _run(layers, params, loss: str, X, Y, *, layout: str, weight_layout: str, engine: str,
         torch_names: Sequence[str], activation_modules: Sequence, identity_modules: tuple = (),
         bounds=None, bound_method: str = "worst_case", lam: float = 4.0) -> OracleResult:
    """Resolve the layout, run one exact pass, and return every array in the caller's layouts
    (with ``bounds``: their rounding bounds and kink masks too, converted the same way)."""
    check_choice("weight_layout", weight_layout, WEIGHT_LAYOUTS)
    check_choice("engine", engine, ORACLE_ENGINES)
    get_loss(loss)
    precision = None if bounds is None else as_precision(bounds, bound_method, lam)
    Xf = as_float64("X", X)
    layout, net, Xsl, Ysl = _choose_layout(layout, layers, params, loss, Xf, Y)
    bp = net.backward(Xsl, Ysl, engine, check=False)

    def act(a):
        return _convert(layout, a)

    def package(q, **extra) -> OracleResult:
        """A pass (Backprop), its bounds or its kink masks (Bounds) in the caller's layouts."""
        grads = [{p: (np.ascontiguousarray(v.T) if (p == "W" and weight_layout == "in_out") else v.copy())
                  for p, v in g.items()} for g in q.grads]
        return OracleResult(
            loss=q.loss if isinstance(q.loss, bool) else float(q.loss), X=act(q.X), dX=act(q.dX),
            Z=[act(z) for z in q.Z], A=[act(a) for a in q.A], Delta=[act(d) for d in q.Delta],
            H=[act(h) for h in q.H], grads=grads,
            layer_names=tuple(f"layer {l}" for l in range(1, len(net.layers) + 1)),
            torch_names=tuple(torch_names), activation_modules=tuple(activation_modules),
            identity_modules=tuple(identity_modules),
            layout=layout, weight_layout=weight_layout, loss_name=loss, reduction=net.loss_fn.reduction, **extra,
        )

    if precision is None:
        return package(bp)
    B = network_bounds(net, bp, Xsl, Ysl, precision)
    return package(bp, bounds=package(B), kink=package(B.kink), precision=precision.name,
                   bound_method=precision.method)


def _activation(k: int, spec) -> tuple[str, float]:
    """An activation given as ``"tanh"`` or ``("leaky_relu", 0.2)``."""
    name, alpha = (spec, 0.01) if isinstance(spec, str) else tuple(spec)
    if not isinstance(name, str) or name.lower() not in ACTIVATION_NAMES:
        raise ValueError(
            f"activations[{k}]: expected one of {', '.join(map(repr, ACTIVATION_NAMES))} or (name, alpha), got {spec!r}"
        )
    return ACTIVATION_NAMES[name.lower()], float(alpha)


def dense(
    weights: Sequence,
    biases: Sequence,
    activations: Sequence,
    loss: str,
    X,
    Y,
    *,
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
        b^(l), shape ``(out,)``.
    activations : sequence, length L
        Per layer ``"identity"``, ``"relu"``, ``"leaky_relu"``, ``"sigmoid"``, ``"tanh"``
        or ``"softmax"``, or ``(name, alpha)`` for the slope of leaky ReLU (default 0.01).
    loss : str
        ``"mse"`` (1/N)ΣΣ(a−y)², ``"half_se"`` ½ΣΣ(a−y)², ``"euclidean"`` 1/(2N)ΣΣ(a−y)²,
        ``"cross_entropy"`` −(1/N)ΣΣ y ln s (softmax output), ``"binary_cross_entropy"``
        (sigmoid output; mean over samples, sum over outputs).
    X : array
        Inputs: ``(N, S_0)`` for ``samples_first``, ``(S_0, N)`` for ``samples_last``.
    Y : array
        Targets in the same sample layout as X, ``(N, S_L)`` or ``(S_L, N)``. For
        ``cross_entropy`` also integer class labels of shape ``(N,)``; for one output
        also a vector of shape ``(N,)``.
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
        Check with ``assert_gradients_match(mine, result, dtype="float32")``.
    bound_method : {"worst_case", "probabilistic"}
        ``worst_case`` holds for any summation order, always (use it when a failure must
        mean a bug); ``probabilistic`` is the much tighter model of Higham & Mary (2019)
        with parameter ``lam``, which can fail, rarely, on a correct implementation.
    lam : float
        λ of the probabilistic bound (each sum holds with probability ≥ 1 − 2e^(−λ²/2) under the model).

    Returns
    -------
    OracleResult
        ``loss``, ``grads`` (``[{"W", "b"}, ...]`` in ``weight_layout``), ``dX`` and Z,
        A, Delta (Δ = ∂J/∂A), H (= ∂J/∂Z) per layer in ``layout``; with ``bounds``, also
        ``bounds``, ``kink``, ``precision`` and ``bound_method``.

    Raises
    ------
    ValueError
        Mismatched lengths or shapes (naming the argument, the expected and the actual
        shape), an undecidable ``layout="auto"``, or a loss whose output activation
        is missing.
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
    for k, (W, _) in enumerate(params):
        if W.ndim != 2:
            raise ValueError(f"weights[{k}]: expected a 2-D matrix, got shape {W.shape}")
        if k and W.shape[1] != params[k - 1][0].shape[0]:
            got = weights[k].shape if hasattr(weights[k], "shape") else np.shape(weights[k])
            raise ValueError(
                f"weights[{k}]: expected {params[k - 1][0].shape[0]} inputs (the outputs of weights[{k - 1}]) "
                f"with weight_layout={weight_layout!r}, got shape {tuple(got)}"
            )
    layers = []
    for k, ((W, _), spec) in enumerate(zip(params, activations)):
        act, alpha = _activation(k, spec)
        layers.append(Dense(int(W.shape[0]), act, alpha=alpha))
    return _run(layers, params, loss, X, Y, layout=layout, weight_layout=weight_layout, engine=engine,
                torch_names=torch_indices(layers), activation_modules=_activation_indices(layers),
                bounds=bounds, bound_method=bound_method, lam=lam)


def network(
    layers: Sequence,
    params: Sequence | Mapping | None,
    loss: str,
    X,
    Y,
    *,
    layout: str = "samples_first",
    weight_layout: str = "out_in",
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
        See :func:`parse_layers` for the entries and options. Sizes come from ``params``.
    params : sequence of (weight, bias), mapping, or None
        One pair per linear / conv2d entry, in order: kernels ``(C_out, C_in, kh, kw)``,
        dense weights as ``weight_layout`` says, biases ``(out,)``. A mapping with
        ``state_dict`` keys (``"0.weight"``, ``"0.bias"``, ...) is accepted too.
    loss : str
        As in :func:`dense`.
    X : array
        ``samples_first``: images ``(N, C, H, W)`` (PyTorch's NCHW) or ``(N, S_0)``;
        ``samples_last``: ``(C, H, W, N)`` or ``(S_0, N)``. Copied to float64.
    Y : array
        Targets in the same sample layout, or class labels ``(N,)`` for cross-entropy.
    layout, weight_layout, engine, bounds, bound_method, lam
        As in :func:`dense`.

    Returns
    -------
    OracleResult
        Every array in the caller's layout (images back to NCHW for ``samples_first``).
    """
    check_choice("weight_layout", weight_layout, WEIGHT_LAYOUTS)
    if hasattr(layers, "named_children"):  # a torch.nn.Sequential: read its modules and parameters
        if params is not None:
            raise ValueError("params: expected None when layers is a torch model (its parameters are used)")
        layers, params = describe(layers)
    pairs = _internal_params(_pairs(params), weight_layout, ("params[{k}] weight", "params[{k}] bias"))
    parsed, names, (acts, identities) = _parse(list(layers), pairs)
    return _run(parsed, pairs, loss, X, Y, layout=layout, weight_layout=weight_layout, engine=engine,
                torch_names=names, activation_modules=acts, identity_modules=identities,
                bounds=bounds, bound_method=bound_method, lam=lam)
