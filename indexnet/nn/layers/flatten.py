"""Flatten: (C, height, width, N) -> (C·height·width, N), a free reshape (derivations/pooling.md#P6)."""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np

from indexnet.nn.layers.base import Layer, LayerCache, LayerGrads
from indexnet.nn.layers.conv import check_batch


@dataclass(frozen=True)
class Flatten(Layer):
    """Row-major flattening of each sample; samples stay last, so no data moves.

    Row r = (c·height + y)·width + x of the output is pixel (c, y, x) of the input (eq. P6); the
    backward pass reshapes Δ back the same way (eq. P7).
    """

    kind = "flatten"

    def output_shape(self, input_shape):
        if len(input_shape) < 1:
            raise ValueError(f"flatten input: expected a sample shape with at least one axis, got {tuple(input_shape)}")
        return (prod(input_shape),)

    def forward(self, params, A_prev, engine):
        A = np.ascontiguousarray(A_prev).reshape(-1, A_prev.shape[-1])
        return LayerCache(A_prev=A_prev, Z=A, A=A)

    def backward(self, params, cache, Delta, engine, need_input_grad=True, H=None):
        H = Delta if H is None else H
        check_batch("Delta", H, cache.A.shape[:-1])
        Delta_prev = np.ascontiguousarray(H).reshape(cache.A_prev.shape) if need_input_grad else None
        return LayerGrads(grads=(), H=H, Delta_prev=Delta_prev)

    def spec(self) -> str:
        return "flatten"

    def to_config(self) -> dict:
        return {"kind": self.kind}
