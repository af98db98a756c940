"""The layer protocol shared by dense, convolution, pooling and flatten layers."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from indexnet.nn.engine import ENGINES  # noqa: F401  (literal | loops | numpy | fast)


@dataclass
class LayerCache:
    """What the forward pass keeps for the backward pass, by derivation name.

    ``A_prev`` is the layer's input (A^(l-1)), ``Z`` its pre-activation and ``A`` its
    output; ``extra`` holds anything else a layer needs (e.g. argmax positions of a
    max-pool).
    """

    A_prev: np.ndarray
    Z: np.ndarray
    A: np.ndarray
    extra: dict = field(default_factory=dict)


@dataclass
class LayerGrads:
    """The result of one layer's backward pass.

    ``grads`` are ∂J/∂θ in the order of ``Layer.param_names``; ``H`` is
    Δ ⊙ ∂σ/∂Z (∂J/∂Z); ``Delta_prev`` is ∂J/∂A^(l-1) (None when not asked for).
    """

    grads: tuple
    H: np.ndarray
    Delta_prev: np.ndarray | None


class Layer:
    """Base class. Subclasses set ``kind`` and implement the methods below.

    Shapes exclude the sample axis, which is always last: a dense layer's output shape
    is ``(S_l,)``, a convolution's ``(C, H, W)``.
    """

    kind: str = "layer"
    param_names: tuple[str, ...] = ()

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one sample's output given one sample's input shape; checks they fit."""
        raise NotImplementedError

    def init_params(self, input_shape, rng: np.random.Generator, dtype) -> tuple:
        """Fresh parameters for this layer (empty tuple for parameter-free layers)."""
        return ()

    def param_shapes(self, input_shape) -> tuple:
        """Shapes of the parameters, in the order of ``param_names``."""
        return ()

    def forward(self, params: tuple, A_prev: np.ndarray, engine: str) -> LayerCache:
        """Z and A from A^(l-1)."""
        raise NotImplementedError

    def backward(
        self, params: tuple, cache: LayerCache, Delta: np.ndarray | None, engine: str,
        need_input_grad: bool = True, H: np.ndarray | None = None,
    ) -> LayerGrads:
        """Gradients from Δ^(l) = ∂J/∂A^(l), or directly from a given H = ∂J/∂Z^(l)
        (the fused softmax + cross-entropy path passes H and Delta=None)."""
        raise NotImplementedError

    def spec(self) -> str:
        """A short, parseable description, e.g. ``dense 800 relu``; stored in model files."""
        raise NotImplementedError

    def to_config(self) -> dict:
        """JSON-serializable description from which :func:`indexnet.nn.layers.from_config` rebuilds the layer."""
        raise NotImplementedError
