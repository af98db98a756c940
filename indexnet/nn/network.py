"""A feed-forward network: layers, a loss, and their parameters.

The forward pass stores every intermediate by its derivation name, and the backward
pass runs the recursion of ``derivations/dense.md`` (Δ^(L) from the loss, then
H^(l) = Δ^(l) ⊙ σ'_l, ∂J/∂W^(l) = H^(l) A^(l-1)ᵗ, ∂J/∂b^(l) = H^(l) J_N,
Δ^(l-1) = W^(l)ᵗ H^(l)) with the kernels of one engine.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from indexnet._validate import check_array
from indexnet.nn.engine import check_engine
from indexnet.nn.layers.base import Layer, LayerCache
from indexnet.nn.layers.dense import Dense
from indexnet.nn.losses import Loss, get_loss


@dataclass
class Backprop:
    """Everything one forward + backward pass computed, by derivation name.

    **Indexing (one scheme for every per-layer list, here and in the oracle's result):**
    position ``l-1`` holds layer l = 1..L in ``Z``, ``A``, ``Delta``, ``H``, ``grads`` and
    ``caches``: ``Z[l-1]`` = Z^(l), ``A[l-1]`` = A^(l), ``Delta[l-1]`` = Δ^(l) = ∂J/∂A^(l),
    ``H[l-1]`` = H^(l) = ∂J/∂Z^(l), ``grads[l-1]`` = ∂J/∂θ^(l). The input and its
    gradient are separate fields: ``X`` = A^(0) and ``dX`` = Δ^(0) = ∂J/∂X (seed 003 §3.3;
    None when not computed).
    """

    loss: float
    X: np.ndarray = field(repr=False)
    Z: list
    A: list
    Delta: list
    H: list
    grads: list  # per layer: dict parameter name -> ∂J/∂θ
    dX: np.ndarray | None = field(repr=False)
    caches: list = field(repr=False, default_factory=list)


#: columns of :attr:`Workspace.layout` (one row per layer l = 1..L)
S_IN, S_OUT, KIND, OFF_Z, OFF_A, OFF_H, OFF_D, OFF_T, OFF_W, OFF_B = range(10)
#: the number of those columns
LAYOUT_COLS = 10


class Workspace:
    """Every array one training step of a dense network writes, allocated once per batch size N.

    Per layer l = 1..L (list position l-1), each S_l × N and C-ordered: ``Z[l-1]`` = Z^(l),
    ``A[l-1]`` = A^(l), ``H[l-1]`` = H^(l) = ∂J/∂Z^(l), and for the hidden layers
    ``D[l-1]`` = Δ^(l) = W^(l+1)ᵗ H^(l+1); ``AT[l-1]`` (N × S_{l-1}) is the packing
    buffer of the weight gradient's fast form; ``per_sample`` holds the N per-sample loss
    terms. All are views of one flat array ``flat`` (so that a compiled step passes one
    array for all of them), located by ``layout`` (int64, one row per layer: S_{l-1},
    S_l, activation code, the offsets of Z, A, H, Δ and the packing buffer in ``flat``, and
    the offsets of W^(l) and b^(l) in the network's flat parameter vector
    :attr:`Network.theta`, which a flat gradient vector shares). With ``support=True`` it also
    holds the support lists of the input (``dense.support_of``), and Z^(1) and H^(1)
    sample-major (the support forms' D1.6 sums, D2.7 and D2.8's operand).
    """

    def __init__(self, net: "Network", N: int, support: bool = False):
        from indexnet.kernels.activations import CODES, IDENTITY
        from indexnet.kernels.dense import SUPPORT_FILL_BLOCKS
        dt = net.dtype
        sizes = [net.input_shape[0]] + [layer.units for layer in net.layers]
        L = len(net.layers)
        self.N = N
        self.flat = np.zeros((4 * sum(sizes[1:]) + sum(sizes[:-1]) + 1) * N, dt)
        at = 0

        def take(s):
            nonlocal at
            at += s * N
            return self.flat[at - s * N:at].reshape(s, N), at - s * N

        self.Z, oZ = zip(*[take(s) for s in sizes[1:]])
        self.A, oA = zip(*[take(s) for s in sizes[1:]])
        self.H, oH = zip(*[take(s) for s in sizes[1:]])
        self.D, oD = zip(*[take(s) for s in sizes[1:]])
        self.AT, oT = zip(*[take(s) for s in sizes[:-1]])
        self.AT = tuple(a.reshape(N, -1) for a in self.AT)
        self.per_sample = take(1)[0].reshape(N)
        oW = np.cumsum([0] + [a.size for p in net.params for a in p])[:-1]
        self.layout = np.array([[sizes[l], sizes[l + 1], CODES.get(layer.activation, IDENTITY), oZ[l], oA[l], oH[l],
                                 oD[l], oT[l], oW[2 * l], oW[2 * l + 1]] for l, layer in enumerate(net.layers)],
                               np.int64)
        self.support = support
        if support:
            S0, S1 = sizes[0], sizes[1]
            self.col_ptr, self.row_ptr = np.zeros(N + 1, np.int64), np.zeros(S0 + 1, np.int64)
            self.col_j, self.row_n = np.zeros(S0 * N, np.int64), np.zeros(S0 * N, np.int64)
            self.col_val, self.row_val = np.zeros(S0 * N, dt), np.zeros(S0 * N, dt)
            self.starts = np.zeros((SUPPORT_FILL_BLOCKS, N), np.int64)  # support_of's fill positions
            self.HT = np.zeros((N, S1), dt)  # H^(1) sample-major (D2.7, D2.8)
            self.ZT = np.zeros((N, S1), dt)  # Z^(1) sample-major (D1.6's sums)
            self.dWT = np.zeros((S0, S1), dt)  # ∂J/∂W^(1) input-major (D2.7)


class Network:
    """A feed-forward network.

    Parameters
    ----------
    layers : sequence of Layer
        Layer descriptions (:class:`indexnet.nn.layers.Dense`, conv, pooling, flatten).
    input_shape : tuple of int
        Shape of one sample: ``(S_0,)`` for dense input, ``(C, H, W)`` for images.
    loss : str
        Loss name (see :mod:`indexnet.nn.losses`).
    dtype : numpy dtype
        float64 (default) or float32.
    seed : int
        Seed of the initialisation (NumPy ``default_rng``).
    params : list of tuple of ndarray, optional
        Parameters to use instead of a fresh initialisation (checked against the shapes;
        their values are copied).

    Attributes
    ----------
    params : tuple of tuple of ndarray
        Per layer its parameter arrays (``W``, ``b``; ``K``, ``b``), C-ordered views of ``theta``.
    theta : ndarray
        Every parameter in one flat vector (layer by layer, in each layer's ``param_names``
        order, row-major): the arrays of ``params`` are views of it, so an update of either
        is an update of both, and a compiled step can take all parameters as one array.

    Examples
    --------
    Seed 002's 2-3-4-1 ReLU network has 30 parameters:

    >>> net = Network.from_sizes([2, 3, 4, 1], ["relu", "relu", "identity"], "half_se")
    >>> net.n_params
    30
    """

    def __init__(self, layers: Sequence[Layer], input_shape, loss: str, *, dtype=np.float64,
                 seed: int = 0, params=None):
        self.layers = tuple(layers)
        if not self.layers:
            raise ValueError("layers: expected at least one layer, got none")
        for k, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{k}]: expected an indexnet Layer, got {type(layer).__name__}")
        self.input_shape = tuple(int(s) for s in input_shape)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype: expected float32 or float64, got {self.dtype}")
        self.loss_fn: Loss = get_loss(loss)
        self.shapes = [self.input_shape]
        for layer in self.layers:
            self.shapes.append(tuple(layer.output_shape(self.shapes[-1])))
        need = self.loss_fn.output_activation
        last = getattr(self.layers[-1], "activation", None)
        if need is not None and last != need:
            raise ValueError(
                f"loss {loss!r} needs a {need} output layer (its value is computed stably from "
                f"that layer's Z), got output activation {last!r}"
            )
        self.seed = seed
        if params is None:
            rng = np.random.default_rng(seed)
            params = [layer.init_params(shape, rng, self.dtype) for layer, shape in zip(self.layers, self.shapes)]
        self._params = self._checked_params(params)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_sizes(cls, sizes: Sequence[int], activations: Sequence[str], loss: str, **kwargs) -> "Network":
        """A dense network ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``, one activation per layer."""
        sizes = list(sizes)
        activations = list(activations)
        if len(sizes) < 2:
            raise ValueError(f"sizes: expected at least 2 sizes (input and output), got {sizes}")
        if len(activations) != len(sizes) - 1:
            raise ValueError(
                f"activations: expected {len(sizes) - 1} (one per layer after the input), got {len(activations)}"
            )
        layers = [Dense(int(s), a) for s, a in zip(sizes[1:], activations)]
        return cls(layers, (int(sizes[0]),), loss, **kwargs)

    def _checked_params(self, params):
        params = [tuple(p) for p in params]
        if len(params) != len(self.layers):
            raise ValueError(f"params: expected {len(self.layers)} entries (one per layer), got {len(params)}")
        for l, (layer, shape, p) in enumerate(zip(self.layers, self.shapes, params), start=1):
            want = layer.param_shapes(shape)
            if len(p) != len(want):
                raise ValueError(f"params of layer {l}: expected {len(want)} arrays {layer.param_names}, got {len(p)}")
            for name, arr, w in zip(layer.param_names, p, want):
                check_array(f"layer {l} {name}", arr, shape=w, dtype=self.dtype, min_samples=None)
        self._shapes = [tuple(arr.shape for arr in p) for p in params]
        self._theta = np.empty(sum(a.size for p in params for a in p), self.dtype)
        views = self.like_theta(self._theta)
        for p, view in zip(params, views):
            for arr, v in zip(p, view):
                v[...] = arr
        return views

    def like_theta(self, vec: np.ndarray) -> tuple:
        """Views of a flat vector laid out as :attr:`theta` (a gradient, an optimiser
        state) in the shape of :attr:`params`: per layer a tuple of C-ordered arrays."""
        views, k = [], 0
        for shapes in self._shapes:
            layer_views = []
            for shape in shapes:
                size = int(np.prod(shape, dtype=np.int64))
                layer_views.append(vec[k:k + size].reshape(shape))
                k += size
            views.append(tuple(layer_views))
        return tuple(views)

    @property
    def theta(self) -> np.ndarray:
        """Every parameter in one flat vector (layer by layer, W before b, row-major), the
        memory :attr:`params` views. The same array for the network's life (not
        assignable): the fast step and the optimisers hold on to it; write into it, or use
        :meth:`set_flat_params`."""
        return self._theta

    @property
    def params(self) -> tuple:
        """Per layer the tuple of its parameter arrays, views of :attr:`theta` (read-only
        container: write into the arrays, or use :meth:`set_flat_params`)."""
        return self._params

    # ---------------------------------------------------------------------- structure
    @property
    def output_shape(self) -> tuple:
        return self.shapes[-1]

    def param_counts(self) -> list[int]:
        """Number of parameters of each layer."""
        return [int(sum(a.size for a in p)) for p in self.params]

    @property
    def n_params(self) -> int:
        """Total number of parameters, Σ_l S_l (S_{l-1} + 1) for a dense net (derivations/init.md)."""
        return sum(self.param_counts())

    def summary(self) -> str:
        """A table: layer, output shape, parameter shapes and counts."""
        rows = [("#", "layer", "output", "parameters", "count"), ("0", "input", str(self.input_shape), "", "")]
        for l, (layer, shape, p) in enumerate(zip(self.layers, self.shapes[1:], self.params), start=1):
            pshapes = ", ".join(f"{n}{tuple(a.shape)}" for n, a in zip(layer.param_names, p))
            rows.append((str(l), layer.spec(), str(shape), pshapes, str(sum(a.size for a in p))))
        widths = [max(len(r[c]) for r in rows) for c in range(5)]
        lines = ["  ".join(r[c].ljust(widths[c]) for c in range(5)).rstrip() for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.append(f"total parameters: {self.n_params}   loss: {self.loss_fn.name}   dtype: {self.dtype}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        specs = ", ".join(layer.spec() for layer in self.layers)
        return f"Network(input={self.input_shape}, layers=[{specs}], loss={self.loss_fn.name!r}, dtype={self.dtype})"

    # ------------------------------------------------------------------ checked input
    def check_inputs(self, X, Y=None) -> None:
        """X is ``(*input_shape, N)`` and Y is ``(*output_shape, N)`` of the network's dtype."""
        check_array("X", X, shape=(*self.input_shape, None), dtype=self.dtype)
        if Y is not None:
            check_array("Y", Y, shape=(*self.output_shape, X.shape[-1]), dtype=self.dtype)
            self.loss_fn.check_targets(Y, "Y")

    # ------------------------------------------------------------------------ passes
    def forward(self, X: np.ndarray, engine: str = "loops", *, check: bool = True) -> list[LayerCache]:
        """Z^(l) and A^(l) of every layer (eq. D1.4)."""
        check_engine(engine)
        if check:
            self.check_inputs(X)
        caches = []
        A = X
        for layer, p in zip(self.layers, self.params):
            cache = layer.forward(p, A, engine)
            caches.append(cache)
            A = cache.A
        return caches

    def predict(self, X: np.ndarray, engine: str = "loops") -> np.ndarray:
        """A^(L), the network's output."""
        return self.forward(X, engine)[-1].A

    def loss(self, X: np.ndarray, Y: np.ndarray, engine: str = "loops") -> float:
        """J(Y, A^(L))."""
        self.check_inputs(X, Y)
        last = self.forward(X, engine, check=False)[-1]
        return self.loss_fn.value(last.Z, last.A, Y, engine)

    def backward(self, X: np.ndarray, Y: np.ndarray, engine: str = "loops", *, fused: bool = True,
                 check: bool = True, input_grad: bool = True) -> Backprop:
        """Loss, every gradient and every intermediate (Z, A, Δ, H) of one pass.

        Parameters
        ----------
        fused : bool
            For softmax + cross-entropy and sigmoid + binary cross-entropy, take
            H^(L) = (A - Y)/N directly (eq. L7). With ``fused=False`` H^(L) goes the long
            way, Δ^(L) (L6, L9) through the activation's Jacobian (S3, D2.13); the two
            agree to rounding.
        input_grad : bool
            Also compute Δ^(0) = ∂J/∂X.
        """
        check_engine(engine)
        if check:
            self.check_inputs(X, Y)
        caches = self.forward(X, engine, check=False)
        last = caches[-1]
        J = self.loss_fn.value(last.Z, last.A, Y, engine)
        Delta = self.loss_fn.delta(last.Z, last.A, Y, engine)
        H_out = None
        if fused and self.loss_fn.output_activation is not None:
            H_out = self.loss_fn.fused_H(last.A, Y, engine)
        return self.backward_from(X, caches, J, Delta, engine, H_out=H_out, input_grad=input_grad)

    def backward_from(self, X: np.ndarray, caches: list[LayerCache], J: float, Delta: np.ndarray,
                      engine: str = "loops", *, H_out: np.ndarray | None = None, input_grad: bool = True) -> Backprop:
        """The backward recursion from a given output error Δ^(L) (and, optionally, H^(L)).

        :meth:`backward` calls it with the loss's Δ^(L); the oracle calls it with the Δ^(L)
        of its loss heads or of an upstream gradient G (J = Σ G ⊙ A^(L), Δ^(L) = G).

        Parameters
        ----------
        X : ndarray
            The input the caches were computed from.
        caches : list of LayerCache
            :meth:`forward`'s output.
        J : float
            The loss value to report.
        Delta : ndarray
            Δ^(L) = ∂J/∂A^(L), shaped like A^(L).
        H_out : ndarray, optional
            H^(L) = ∂J/∂Z^(L) when known directly (the fused output gradient, L7);
            otherwise it is Δ^(L) through σ'.
        input_grad : bool
            Also compute Δ^(0) = ∂J/∂X.
        """
        check_engine(engine)
        L = len(self.layers)
        deltas = [None] * (L + 1)  # deltas[l] = Δ^(l), l = 0..L
        deltas[L] = Delta
        Hs, grads = [None] * L, [None] * L
        for l in range(L, 0, -1):
            layer, cache = self.layers[l - 1], caches[l - 1]
            out = layer.backward(self.params[l - 1], cache, deltas[l], engine,
                                 need_input_grad=(l > 1 or input_grad), H=H_out if l == L else None)
            Hs[l - 1] = out.H
            grads[l - 1] = dict(zip(layer.param_names, out.grads))
            deltas[l - 1] = out.Delta_prev
        return Backprop(
            loss=J,
            X=X,
            Z=[c.Z for c in caches],
            A=[c.A for c in caches],
            Delta=deltas[1:],
            H=Hs,
            grads=grads,
            dX=deltas[0],
            caches=caches,
        )

    def gradients(self, X: np.ndarray, Y: np.ndarray, engine: str = "loops", **kwargs) -> list[dict]:
        """∂J/∂θ of every layer: a list of dicts ``{"W": ..., "b": ...}``."""
        return self.backward(X, Y, engine, **kwargs).grads

    # -------------------------------------------------------------- flat parameters
    def flat_params(self) -> np.ndarray:
        """A copy of all parameters concatenated (layer by layer, W before b, row-major): of :attr:`theta`."""
        return self.theta.copy()

    def set_flat_params(self, theta: np.ndarray) -> None:
        """Overwrite the parameters from a flat vector laid out as :meth:`flat_params`."""
        check_array("theta", theta, shape=(self.n_params,), dtype=self.dtype, min_samples=None)
        self.theta[:] = theta

    def workspace(self, N: int, support: bool = False) -> Workspace:
        """The :class:`Workspace` of batch size N for a dense network, made on first use;
        a few sizes are kept (an epoch's shorter last batch)."""
        cache = self.__dict__.setdefault("_workspaces", {})
        key = (int(N), bool(support))
        if key not in cache:
            if len(cache) >= 4:
                cache.pop(next(iter(cache)))
            cache[key] = Workspace(self, int(N), support)
        return cache[key]

    def copy(self) -> "Network":
        """A network with the same layers and a deep copy of the parameters."""
        return Network(self.layers, self.input_shape, self.loss_fn.name, dtype=self.dtype,
                       seed=self.seed, params=[tuple(a.copy() for a in p) for p in self.params])
