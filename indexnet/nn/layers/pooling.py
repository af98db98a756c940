"""Max and average pooling layers (derivations/pooling.md)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from indexnet._validate import check_positive_int
from indexnet.nn.engine import form
from indexnet.nn.layers.base import Layer, LayerCache, LayerGrads
from indexnet.nn.layers.conv import check_batch, check_image_shape


def check_pool_geometry(input_shape, size: int, stride: int) -> tuple[int, int]:
    """Check that a k × k window fits the input; return ``(height_out, width_out)`` (eq. P1)."""
    C, height, width = check_image_shape("pooling input", input_shape)
    if size > height or size > width:
        raise ValueError(
            f"size: expected a pooling window no larger than the input (height, width) = ({height}, {width}), "
            f"got k = {size}"
        )
    return (height - size) // stride + 1, (width - size) // stride + 1


@dataclass(frozen=True)
class _Pool2D(Layer):
    """Shared plumbing of the pooling layers: geometry, checks, config.

    ``size`` is the window k, ``stride`` s defaults to k (windows that tile the input).
    No padding; rows and columns past the last whole window are not read.
    """

    size: int = 2
    stride: int | None = None

    def __post_init__(self):
        check_positive_int("size", self.size)
        object.__setattr__(self, "stride", check_positive_int("stride", self.size if self.stride is None else self.stride))

    def output_shape(self, input_shape):
        height_out, width_out = check_pool_geometry(input_shape, self.size, self.stride)
        return (input_shape[0], height_out, width_out)

    def _empty_output(self, A_prev):
        C = A_prev.shape[0]
        _, height_out, width_out = self.output_shape(A_prev.shape[:-1])
        return np.empty((C, height_out, width_out, A_prev.shape[-1]), dtype=A_prev.dtype)

    def _upstream(self, cache, Delta, H):
        """H = ∂J/∂Z; pooling has no activation, so H is Δ itself."""
        if H is None:
            check_batch("Delta", Delta, cache.Z.shape[:-1])
            H = Delta
        return H

    def spec(self) -> str:
        return f"{self.kind} {self.size}x{self.size} stride {self.stride}"

    def to_config(self) -> dict:
        return {"kind": self.kind, "size": self.size, "stride": self.stride}


@dataclass(frozen=True)
class MaxPool2D(_Pool2D):
    """Max over each k × k window (eq. P2); the gradient goes to the window's first maximum (P3)."""

    kind = "maxpool2d"

    def forward(self, params, A_prev, engine):
        Z = self._empty_output(A_prev)
        arg = np.empty(Z.shape, dtype=np.int64)
        form("pooling", "maxpool_forward", engine)(A_prev, self.size, self.stride, Z, arg)
        return LayerCache(A_prev=A_prev, Z=Z, A=Z, extra={"arg": arg})

    def backward(self, params, cache, Delta, engine, need_input_grad=True, H=None):
        H = self._upstream(cache, Delta, H)
        Delta_prev = None
        if need_input_grad:
            Delta_prev = np.empty_like(cache.A_prev)
            form("pooling", "maxpool_backward", engine)(H, cache.extra["arg"], self.size, self.stride, Delta_prev)
        return LayerGrads(grads=(), H=H, Delta_prev=Delta_prev)


@dataclass(frozen=True)
class AvgPool2D(_Pool2D):
    """Mean over each k × k window (eq. P4); the gradient is shared equally (P5)."""

    kind = "avgpool2d"

    def forward(self, params, A_prev, engine):
        Z = self._empty_output(A_prev)
        form("pooling", "avgpool_forward", engine)(A_prev, self.size, self.stride, Z)
        return LayerCache(A_prev=A_prev, Z=Z, A=Z)

    def backward(self, params, cache, Delta, engine, need_input_grad=True, H=None):
        H = self._upstream(cache, Delta, H)
        Delta_prev = None
        if need_input_grad:
            Delta_prev = np.empty_like(cache.A_prev)
            form("pooling", "avgpool_backward", engine)(H, self.size, self.stride, Delta_prev)
        return LayerGrads(grads=(), H=H, Delta_prev=Delta_prev)
