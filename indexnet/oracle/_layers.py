"""A standalone activation layer, for descriptions where σ follows a layer it cannot be fused into.

indexnet fuses σ into the dense or conv layer before it (``Dense(..., activation=)``). A
PyTorch model may also put an activation after a pooling or flatten module, or first;
the oracle then runs this layer: Z = A^(l-1), A = σ(Z), H = Δ ⊙ σ'(Z) (eq. D2.13) and
Δ^(l-1) = H, with the same activation kernels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from indexnet.nn.layers.base import Layer, LayerCache, LayerGrads
from indexnet.nn.layers.dense import activation_backward, apply_activation, check_activation


@dataclass(frozen=True)
class Activation(Layer):
    """A = σ(A_prev), elementwise over any sample shape (softmax: flat inputs only)."""

    activation: str
    alpha: float = 0.01

    kind = "activation"
    param_names = ()

    def __post_init__(self):
        check_activation(self.activation)

    def output_shape(self, input_shape):
        if self.activation == "softmax" and len(input_shape) != 1:
            raise ValueError(f"softmax: expected a flat (S,) input (softmax over the feature axis), got {tuple(input_shape)}")
        return tuple(input_shape)

    def forward(self, params, A_prev, engine):
        Z2 = A_prev.reshape(-1, A_prev.shape[-1])
        A = apply_activation(self.activation, self.alpha, Z2, np.empty_like(Z2), engine)
        return LayerCache(A_prev=A_prev, Z=A_prev, A=A.reshape(A_prev.shape))

    def backward(self, params, cache, Delta, engine, need_input_grad=True, H=None):
        shape = cache.Z.shape
        if H is None:
            H, _ = activation_backward(self.activation, self.alpha, cache.Z.reshape(-1, shape[-1]),
                                       cache.A.reshape(-1, shape[-1]), np.ascontiguousarray(Delta).reshape(-1, shape[-1]),
                                       engine)
            H = H.reshape(shape)
        return LayerGrads(grads=(), H=H, Delta_prev=H if need_input_grad else None)

    def spec(self) -> str:
        return f"activation {self.activation}"
