"""2-D convolution layer: Z = K ⋆ A_prev + b, A = σ(Z) (derivations/conv2d.md)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from indexnet._validate import check_choice, check_positive_int
from indexnet.nn.engine import form
from indexnet.kernels.activations import CODES
from indexnet.kernels.conv2d import out_size
from indexnet.nn.layers.base import Layer, LayerCache, LayerGrads
from indexnet.nn.layers.dense import activation_backward, apply_activation, check_activation, init_weights


def check_image_shape(name: str, input_shape) -> tuple[int, int, int]:
    """One sample of an image layer's input is ``(C, height, width)``."""
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(
            f"{name}: expected a (C, height, width) sample shape (images are (C, height, width, N), samples last), "
            f"got {shape}"
        )
    return shape


def check_conv_geometry(input_shape, kernel_size, stride: int, pad: int, in_channels: int | None = None):
    """Check that a convolution fits its input; return ``(height_out, width_out)`` (eq. C3).

    Raises
    ------
    ValueError
        ``stride`` < 1, ``pad`` < 0, a kernel larger than the padded input, or an input
        whose channel count differs from the kernels' ``in_channels``.
    """
    C, height, width = check_image_shape("conv2d input", input_shape)
    check_positive_int("stride", stride)
    check_positive_int("pad", pad, minimum=0)
    kh, kw = kernel_size
    if in_channels is not None and C != in_channels:
        raise ValueError(
            f"conv2d input: expected C_in = {in_channels} channels (K.shape[1]), got {C} "
            f"in sample shape {tuple(input_shape)}"
        )
    if kh > height + 2 * pad or kw > width + 2 * pad:
        raise ValueError(
            f"kernel_size: expected a kernel no larger than the padded input "
            f"(height + 2p, width + 2p) = ({height + 2 * pad}, {width + 2 * pad}), got (kh, kw) = ({kh}, {kw})"
        )
    return out_size(height, kh, stride, pad), out_size(width, kw, stride, pad)


def check_batch(name: str, A, shape) -> None:
    """A batch ``(C, height, width, N)`` matches the per-sample shape the layer expects."""
    if A.ndim != len(shape) + 1 or A.shape[:-1] != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape) + ('N',)}, got {A.shape}")


def _pair(value) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    kh, kw = (check_positive_int("kernel_size", v) for v in value)
    return kh, kw


@dataclass(frozen=True)
class Conv2D(Layer):
    """A convolution (cross-correlation, eq. C5) of ``filters`` kernels, then σ.

    Parameters
    ----------
    filters : int
        C_out, the number of kernels (output channels).
    kernel_size : int or (int, int)
        (kh, kw); an int means square.
    stride, pad : int
        Stride s >= 1 and zero padding p >= 0 on every side.
    activation : str
        An elementwise activation: ``identity``, ``relu``, ``leaky_relu``, ``sigmoid``,
        ``tanh``. It acts on Z flattened to ``(C·height_out·width_out, N)``, a view.
    alpha : float
        Slope of leaky ReLU for z < 0.
    init : str
        ``auto`` (He for the ReLU family, Glorot otherwise), ``he`` or ``glorot``, with
        fan-in C_in·kh·kw and fan-out C_out·kh·kw.
    """

    filters: int
    kernel_size: tuple = (3, 3)
    stride: int = 1
    pad: int = 0
    activation: str = "identity"
    alpha: float = 0.01
    init: str = "auto"

    kind = "conv2d"
    param_names = ("K", "b")

    def __post_init__(self):
        check_positive_int("filters", self.filters)
        object.__setattr__(self, "kernel_size", _pair(self.kernel_size))
        check_positive_int("stride", self.stride)
        check_positive_int("pad", self.pad, minimum=0)
        check_activation(self.activation, tuple(CODES))
        check_choice("init", self.init, ("auto", "he", "glorot"))

    def output_shape(self, input_shape):
        height_out, width_out = check_conv_geometry(input_shape, self.kernel_size, self.stride, self.pad)
        return (self.filters, height_out, width_out)

    def param_shapes(self, input_shape):
        C_in = check_image_shape("conv2d input", input_shape)[0]
        return ((self.filters, C_in) + self.kernel_size, (self.filters,))

    def init_params(self, input_shape, rng, dtype):
        k_shape, b_shape = self.param_shapes(input_shape)
        taps = self.kernel_size[0] * self.kernel_size[1]
        K = init_weights(k_shape, k_shape[1] * taps, self.filters * taps, self.activation, rng, dtype, self.init)
        return (np.ascontiguousarray(K), np.zeros(b_shape, dtype=dtype))

    def forward(self, params, A_prev, engine):
        K, b = params
        height_out, width_out = check_conv_geometry(A_prev.shape[:-1], self.kernel_size, self.stride, self.pad, K.shape[1])
        N = A_prev.shape[-1]
        Z = np.empty((K.shape[0], height_out, width_out, N), dtype=A_prev.dtype)
        A = np.empty_like(Z)
        if engine == "fast":  # C12: σ folded into the store; the fast form pads A_prev into a buffer of ours
            form("conv2d", "forward_activation", engine)(K, A_prev, b, self.stride, self.pad, CODES[self.activation],
                                                         self.alpha, Z, A, _padded(A_prev, self.pad))
            return LayerCache(A_prev=A_prev, Z=Z, A=A)
        form("conv2d", "forward", engine)(K, A_prev, b, self.stride, self.pad, Z)
        apply_activation(self.activation, self.alpha, _flat(Z), _flat(A), engine)
        return LayerCache(A_prev=A_prev, Z=Z, A=A)

    def backward(self, params, cache, Delta, engine, need_input_grad=True, H=None):
        K, _ = params
        if H is None:
            check_batch("Delta", Delta, cache.Z.shape[:-1])
            H2, _ = activation_backward(self.activation, self.alpha, _flat(cache.Z), _flat(cache.A), _flat(Delta), engine)
            H = H2.reshape(cache.Z.shape)
        fast = engine == "fast"  # the fast forms pack their input into a buffer of ours (C4, C10)
        dK = np.empty_like(K)
        form("conv2d", "kernel_grad", engine)(H, cache.A_prev, self.stride, self.pad, dK,
                                              *((_padded(cache.A_prev, self.pad),) if fast else ()))
        db = form("conv2d", "bias_grad", engine)(H, np.empty(K.shape[0], dtype=K.dtype))
        Delta_prev = None
        if need_input_grad:
            Delta_prev = np.empty_like(cache.A_prev)
            form("conv2d", "input_grad", engine)(K, H, self.stride, self.pad, Delta_prev,
                                                 *((_framed(K, cache.A_prev, self.pad),) if fast else ()))
        return LayerGrads(grads=(dK, db), H=H, Delta_prev=Delta_prev)

    def spec(self) -> str:
        kh, kw = self.kernel_size
        return f"conv2d {self.filters} {kh}x{kw} stride {self.stride} pad {self.pad} {self.activation}"

    def to_config(self) -> dict:
        return {"kind": self.kind, "filters": self.filters, "kernel_size": list(self.kernel_size),
                "stride": self.stride, "pad": self.pad, "activation": self.activation,
                "alpha": self.alpha, "init": self.init}


def _flat(A: np.ndarray) -> np.ndarray:
    """(C, height, width, N) -> (C·height·width, N), a view of C-contiguous memory (eq. P6)."""
    return A.reshape(-1, A.shape[-1])


def padded_shape(A_prev_shape, pad: int) -> tuple:
    """Shape of P, the input on its zero frame (eq. C4): (C_in, height + 2p, width + 2p, N)."""
    C, height, width, N = A_prev_shape
    return (C, height + 2 * pad, width + 2 * pad, N)


def framed_shape(K_shape, A_prev_shape, pad: int) -> tuple:
    """Shape of G, H dilated and framed (eq. C10): (C_out, height + 2p + kh − 1, width + 2p + kw − 1, N)."""
    C_out, _, kh, kw = K_shape
    _, height, width, N = A_prev_shape
    return (C_out, height + 2 * pad + kh - 1, width + 2 * pad + kw - 1, N)


def _padded(A_prev, pad):
    return np.empty(padded_shape(A_prev.shape, pad), A_prev.dtype)


def _framed(K, A_prev, pad):
    return np.empty(framed_shape(K.shape, A_prev.shape, pad), A_prev.dtype)
