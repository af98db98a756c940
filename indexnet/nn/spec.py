"""The ``--layers`` grammar: a network's layers written on one command line.

A spec is a comma-separated list of tokens, input excluded (it comes from the data)::

    800:relu,10:softmax                          seed 001's 784-800-10 (on MNIST)
    conv8@3x3/p1:relu,maxpool2,conv16@3x3/p1:relu,maxpool2,10:softmax

=====================================  ===============================================
token                                  layer
=====================================  ===============================================
``UNITS:ACT``                          :class:`~indexnet.nn.layers.Dense` of ``UNITS``
                                       neurons, activation ``ACT``
``convF@KHxKW[/sS][/pP]:ACT``          :class:`~indexnet.nn.layers.conv.Conv2D` with ``F``
                                       kernels of KH × KW (``@3`` means 3×3), stride
                                       ``S`` (default 1), zero padding ``P`` (default 0)
``maxpoolK[/sS]``, ``avgpoolK[/sS]``   K × K pooling, stride ``S`` (default K)
``flatten``                            (C, H, W) -> (C·H·W,)
=====================================  ===============================================

Activations: ``identity``, ``relu``, ``leaky_relu``, ``sigmoid``, ``tanh``, ``softplus`` and (dense
only) ``softmax``; the activation is required, so ``800`` alone is an error rather
than a silently linear layer. A ``flatten`` is inserted automatically between an
image layer (conv or pooling) and a dense layer. When the first layer is a conv or
pooling layer the network takes the data set's images ``(C, H, W)``; otherwise its
flat features.
"""
from __future__ import annotations

import re
from typing import Sequence

from indexnet.nn.layers.base import Layer
from indexnet.nn.layers.dense import ACTIVATIONS, Dense

__all__ = ["parse_layers", "format_layers", "build_layers", "SpecError"]

IMAGE_KINDS = ("conv2d", "maxpool2d", "avgpool2d")

_DENSE = re.compile(r"^(?P<units>\d+):(?P<act>[a-z_]+)$")
_CONV = re.compile(
    r"^conv(?P<filters>\d+)@(?P<kh>\d+)(?:x(?P<kw>\d+))?(?P<opts>(?:/[sp]\d+)*):(?P<act>[a-z_]+)$"
)
_POOL = re.compile(r"^(?P<kind>max|avg)pool(?P<size>\d+)(?P<opts>(?:/s\d+)?)$")

GRAMMAR = ("UNITS:ACT (e.g. 800:relu), convF@KHxKW[/sS][/pP]:ACT (e.g. conv8@3x3/p1:relu), "
           "maxpoolK[/sS], avgpoolK[/sS] or flatten")


class SpecError(ValueError):
    """A ``--layers`` spec that does not parse; the message names the token."""


def _options(token: str, text: str, allowed: str) -> dict[str, int]:
    """``/s2/p1`` -> ``{"s": 2, "p": 1}``; each letter at most once."""
    out: dict[str, int] = {}
    for part in filter(None, text.split("/")):
        key, value = part[0], int(part[1:])
        if key not in allowed or key in out:
            raise SpecError(f"--layers: token {token!r}: option /{part} given twice or not one of /{' /'.join(allowed)}")
        out[key] = value
    return out


def _activation(token: str, act: str, allowed: Sequence[str]) -> str:
    if act not in allowed:
        raise SpecError(f"--layers: token {token!r}: expected an activation in {', '.join(allowed)}, got {act!r}")
    return act


def _parse_token(token: str) -> Layer:
    from indexnet.nn.layers.conv import Conv2D
    from indexnet.nn.layers.flatten import Flatten
    from indexnet.nn.layers.pooling import AvgPool2D, MaxPool2D

    if token == "flatten":
        return Flatten()
    if m := _DENSE.match(token):
        units = int(m["units"])
        if units < 1:
            raise SpecError(f"--layers: token {token!r}: expected at least 1 unit, got {units}")
        return Dense(units, _activation(token, m["act"], ACTIVATIONS))
    if m := _CONV.match(token):
        opts = _options(token, m["opts"], "sp")
        kh = int(m["kh"])
        kw = kh if m["kw"] is None else int(m["kw"])
        act = _activation(token, m["act"], tuple(a for a in ACTIVATIONS if a != "softmax"))
        values = {"filters": int(m["filters"]), "kernel size": min(kh, kw), "stride": opts.get("s", 1)}
        for what, v in values.items():
            if v < 1:
                raise SpecError(f"--layers: token {token!r}: expected a {what} >= 1, got {v}")
        return Conv2D(int(m["filters"]), (kh, kw), stride=opts.get("s", 1), pad=opts.get("p", 0), activation=act)
    if m := _POOL.match(token):
        size = int(m["size"])
        stride = _options(token, m["opts"], "s").get("s", size)
        if size < 1 or stride < 1:
            raise SpecError(f"--layers: token {token!r}: expected window and stride >= 1, got {size} and {stride}")
        return (MaxPool2D if m["kind"] == "max" else AvgPool2D)(size, stride)
    raise SpecError(f"--layers: token {token!r} does not parse: expected {GRAMMAR}")


def parse_layers(spec: str) -> list[Layer]:
    """Parse a ``--layers`` spec into layer descriptions (no automatic flatten yet).

    Parameters
    ----------
    spec : str
        Comma-separated tokens, e.g. ``"800:relu,10:softmax"``; spaces are ignored.

    Returns
    -------
    list of Layer

    Raises
    ------
    SpecError
        An empty spec, an empty token (``"800:relu,,10:softmax"``), or a token that does
        not parse; the message quotes the token and the grammar.
    """
    if not isinstance(spec, str):
        raise SpecError(f"--layers: expected a string such as '800:relu,10:softmax', got {type(spec).__name__}")
    text = spec.replace(" ", "").lower()
    if not text:
        raise SpecError("--layers: expected at least one layer such as '800:relu,10:softmax', got an empty spec")
    tokens = text.split(",")
    for k, token in enumerate(tokens, start=1):
        if not token:
            raise SpecError(f"--layers: token {k} of {spec!r} is empty (two commas in a row, or a trailing comma)")
    return [_parse_token(t) for t in tokens]


def format_layers(layers: Sequence[Layer]) -> str:
    """The spec string of ``layers``: the inverse of :func:`parse_layers`.

    Automatically inserted flatten layers are written out, so the result parses back to
    the same layers.
    """
    tokens = []
    for layer in layers:
        kind = layer.kind
        if kind == "dense":
            tokens.append(f"{layer.units}:{layer.activation}")
        elif kind == "conv2d":
            kh, kw = layer.kernel_size
            opts = (f"/s{layer.stride}" if layer.stride != 1 else "") + (f"/p{layer.pad}" if layer.pad else "")
            tokens.append(f"conv{layer.filters}@{kh}x{kw}{opts}:{layer.activation}")
        elif kind in ("maxpool2d", "avgpool2d"):
            stride = f"/s{layer.stride}" if layer.stride != layer.size else ""
            tokens.append(f"{kind[:3]}pool{layer.size}{stride}")
        elif kind == "flatten":
            tokens.append("flatten")
        else:
            raise ValueError(f"layers: no spec token for layer kind {kind!r}")
    return ",".join(tokens)


def build_layers(spec: str, n_features: int, image_shape: tuple[int, int, int] | None,
                 n_outputs: int) -> tuple[list[Layer], tuple[int, ...]]:
    """Layers and the network's input shape for a data set.

    Parameters
    ----------
    spec : str
        The ``--layers`` spec.
    n_features : int
        Flat input features of the data set.
    image_shape : (C, H, W) or None
        The data set's image shape, needed when the spec starts with a conv or pooling
        layer.
    n_outputs : int
        Rows of the data set's targets; the last layer must produce exactly this many.

    Returns
    -------
    layers : list of Layer
        With a flatten inserted between an image layer and a dense layer.
    input_shape : tuple of int
        ``image_shape`` or ``(n_features,)``.

    Raises
    ------
    SpecError
        Image layers on a data set without images, a last layer that is not flat or
        whose size differs from ``n_outputs``, or shapes that do not fit.
    """
    from indexnet.nn.layers.flatten import Flatten

    parsed = parse_layers(spec)
    if parsed[0].kind in IMAGE_KINDS:
        if image_shape is None:
            raise SpecError(
                f"--layers: {spec!r} starts with an image layer ({format_layers(parsed[:1])}), "
                f"but the data set has flat features ({n_features}) and no image shape"
            )
        input_shape: tuple[int, ...] = tuple(image_shape)
    else:
        input_shape = (n_features,)
    layers: list[Layer] = []
    shape = input_shape
    for layer in parsed:
        if layer.kind == "dense" and len(shape) > 1:
            layers.append(Flatten())
            shape = layers[-1].output_shape(shape)
        if layer.kind in IMAGE_KINDS and len(shape) != 3:
            raise SpecError(
                f"--layers: {format_layers([layer])} needs a (C, H, W) image input, but the layer "
                f"before it gives shape {shape}"
            )
        try:
            shape = tuple(layer.output_shape(shape))
        except ValueError as exc:
            raise SpecError(f"--layers: {format_layers([layer])} does not fit its input shape {shape}: {exc}") from exc
        layers.append(layer)
    if shape != (n_outputs,):
        raise SpecError(
            f"--layers: expected the last layer to give {n_outputs} output(s) (the data set's targets), "
            f"got shape {shape} from {format_layers(parsed[-1:])}"
        )
    return layers, input_shape
