"""Dense (fully connected) layer: Z = W A_prev + b J_Nᵗ, A = σ(Z) (derivations/dense.md)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from indexnet._validate import check_choice, check_positive_int
from indexnet.nn.engine import form
from indexnet.kernels.activations import CODES
from indexnet.nn.layers.base import Layer, LayerCache, LayerGrads

ACTIVATIONS = tuple(CODES) + ("softmax",)
#: activations initialised with He (ReLU family); the rest use Glorot (derivations/init.md)
HE_ACTIVATIONS = ("relu", "leaky_relu")


def check_activation(name: str, allowed=ACTIVATIONS) -> str:
    """``name`` is a known activation."""
    return check_choice("activation", name, allowed)


def init_weights(shape, fan_in: int, fan_out: int, activation: str, rng, dtype, scheme: str = "auto"):
    """He normal (I1) for the ReLU family, Glorot uniform (I2) otherwise (derivations/init.md)."""
    scheme = check_choice("init", scheme, ("auto", "he", "glorot"))
    if scheme == "he" or (scheme == "auto" and activation in HE_ACTIVATIONS):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def apply_activation(activation: str, alpha: float, Z2: np.ndarray, A2: np.ndarray, engine: str) -> np.ndarray:
    """A = σ(Z) on a 2-D view (eq. A0, or softmax S1)."""
    if activation == "softmax":
        return form("activations", "softmax", engine)(Z2, A2)
    return form("activations", "activation", engine)(Z2, CODES[activation], alpha, A2)


def activation_backward(activation: str, alpha: float, Z2, A2, Delta2, engine: str):
    """H = Δ ⊙ σ'(Z) (eq. D2.13) or the softmax JVP (S3); also returns σ' (None for softmax).

    Returns ``(H, dsig)`` on 2-D views.
    """
    H = np.empty_like(Z2)
    if activation == "softmax":
        return form("activations", "softmax_jvp", engine)(A2, Delta2, H), None
    dsig = form("activations", "activation_grad", engine)(Z2, A2, CODES[activation], alpha, np.empty_like(Z2))
    return form("dense", "hadamard", engine)(Delta2, dsig, H), dsig


@dataclass(frozen=True)
class Dense(Layer):
    """A fully connected layer of ``units`` neurons with one activation.

    Parameters
    ----------
    units : int
        S_l, the number of neurons.
    activation : str
        ``identity``, ``relu``, ``leaky_relu``, ``sigmoid``, ``tanh``, ``softplus`` or ``softmax``.
    alpha : float
        Slope of leaky ReLU for z < 0.
    init : str
        ``auto`` (He for the ReLU family, Glorot otherwise), ``he`` or ``glorot``.
    """

    units: int
    activation: str = "identity"
    alpha: float = 0.01
    init: str = "auto"

    kind = "dense"
    param_names = ("W", "b")

    def __post_init__(self):
        check_positive_int("units", self.units)
        check_activation(self.activation)
        check_choice("init", self.init, ("auto", "he", "glorot"))

    def output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(
                f"dense layer input: expected a flat (S_prev,) sample shape, got {tuple(input_shape)}; "
                f"put a flatten layer before it"
            )
        return (self.units,)

    def param_shapes(self, input_shape):
        return ((self.units, input_shape[0]), (self.units,))

    def init_params(self, input_shape, rng, dtype):
        (w_shape, b_shape) = self.param_shapes(input_shape)
        W = init_weights(w_shape, input_shape[0], self.units, self.activation, rng, dtype, self.init)
        return (np.ascontiguousarray(W), np.zeros(b_shape, dtype=dtype))

    def forward(self, params, A_prev, engine):
        W, b = params
        Z = np.empty((W.shape[0], A_prev.shape[1]), dtype=A_prev.dtype)
        if engine == "fast":  # the fast form packs A_prevᵗ into a buffer of ours
            form("dense", "forward", engine)(W, A_prev, b, Z, np.empty(A_prev.shape[::-1], A_prev.dtype))
        else:
            form("dense", "forward", engine)(W, A_prev, b, Z)
        A = apply_activation(self.activation, self.alpha, Z, np.empty_like(Z), engine)
        return LayerCache(A_prev=A_prev, Z=Z, A=A)

    def backward(self, params, cache, Delta, engine, need_input_grad=True, H=None):
        W, _ = params
        dsig = None
        if H is None:
            H, dsig = activation_backward(self.activation, self.alpha, cache.Z, cache.A, Delta, engine)
        dW = np.empty_like(W)
        db = np.empty(W.shape[0], dtype=W.dtype)
        if engine == "literal":
            # The literal sums take Δ and σ' separately (eqs. D2.5, D2.10); where H is
            # already ∂J/∂Z (fused output, softmax JVP) it enters as Δ with σ' = 1.
            if dsig is None:
                Delta, dsig = H, np.ones_like(H)
            form("dense", "weight_grad", "literal")(Delta, dsig, cache.A_prev, dW)
            form("dense", "bias_grad", "literal")(Delta, dsig, db)
        elif engine == "fast":  # the fast form packs A_prevᵗ for short batches into a buffer of ours
            form("dense", "weight_grad", engine)(H, cache.A_prev, dW, np.empty(cache.A_prev.shape[::-1], W.dtype))
            form("dense", "bias_grad", engine)(H, db)
        else:
            form("dense", "weight_grad", engine)(H, cache.A_prev, dW)
            form("dense", "bias_grad", engine)(H, db)
        Delta_prev = None
        if need_input_grad:
            Delta_prev = np.empty_like(cache.A_prev)
            form("dense", "input_grad", engine)(W, H, Delta_prev)
        return LayerGrads(grads=(dW, db), H=H, Delta_prev=Delta_prev)

    def spec(self) -> str:
        return f"dense {self.units} {self.activation}"

    def to_config(self) -> dict:
        return {"kind": self.kind, "units": self.units, "activation": self.activation,
                "alpha": self.alpha, "init": self.init}
