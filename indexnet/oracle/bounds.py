"""How far a correct low-precision implementation may be from the float64 reference, element by element.

The bounds of ``derivations/rounding.md``, carried through a network forward and backward
(eq. R31) by the kernels of :mod:`indexnet.kernels.rounding`. Input: the float64 network
and one :class:`~indexnet.nn.network.Backprop` of it, samples last. Output: a
:class:`Bounds` with the same structure as the pass (``Z``, ``A``, ``Delta``, ``H``,
``grads``, ``loss``) holding an elementwise bound on |computed − exact| for a target
precision, and a :class:`Bounds` of boolean masks (``kink``) marking the elements that
have no bound (eq. R10, R29: a ReLU / leaky-ReLU pre-activation or a max-pool tie within
the perturbation, and everything computed from one).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from indexnet._validate import check_choice
from indexnet.kernels import rounding as R
from indexnet.kernels.activations import CODES, activation_grad_numpy
from indexnet.nn.layers.conv import Conv2D
from indexnet.nn.layers.dense import Dense
from indexnet.nn.layers.flatten import Flatten
from indexnet.nn.layers.pooling import AvgPool2D, MaxPool2D

#: unit roundoff u = 2^-p (round to nearest, p bits of precision) of each target (eq. R1)
UNIT_ROUNDOFF = {"float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}
#: the underflow term η of eq. R1: half the spacing of the subnormal numbers
UNDERFLOW = {"float32": 2.0**-150, "float16": 2.0**-25, "bfloat16": 2.0**-134}
#: exp, log, log1p and tanh are assumed accurate to within this many ulp (eq. R6)
FUNCTION_ULPS = 4
#: the factor that covers the second-order terms dropped by the first-order analysis (eq. R7)
SAFETY = 2.0
METHODS = ("worst_case", "probabilistic")


@dataclass(frozen=True)
class Precision:
    """A target precision and the kind of bound (eqs. R1, R2, R30).

    Attributes
    ----------
    name : str
        ``float32``, ``float16`` or ``bfloat16``.
    method : str
        ``worst_case`` (γ_n = nu/(1−nu), eq. R2: holds always, in any summation order) or
        ``probabilistic`` (eq. R30, after Higham & Mary 2019: rounding errors independent and
        of mean zero, summation order not arranged by sign; each sum's bound then holds with
        probability at least 1 − 2·exp(−λ²/2)).
    lam : float
        λ of the probabilistic bound.
    safety : float or None
        Factor applied to every first-order bound (eq. R7); None: 2 for ``worst_case``, 1 for
        ``probabilistic`` (whose λ already carries the margin, eq. R30).
    inputs_exact, params_exact : bool
        Whether X (and Y) and the parameters are exactly representable in the target
        precision (then they carry no rounding of their own); default: rounded once.
    """

    name: str = "float32"
    method: str = "worst_case"
    lam: float = 4.0
    safety: float | None = None
    inputs_exact: bool = False
    params_exact: bool = False

    def __post_init__(self):
        check_choice("bounds", self.name, tuple(UNIT_ROUNDOFF))
        check_choice("method", self.method, METHODS)
        if not (self.lam > 0):
            raise ValueError(f"lam: expected a positive λ, got {self.lam!r}")
        if self.safety is None:
            object.__setattr__(self, "safety", SAFETY if self.method == "worst_case" else 1.0)
        if not (self.safety >= 1):
            raise ValueError(f"safety: expected a factor >= 1, got {self.safety!r}")

    @property
    def u(self) -> float:
        return UNIT_ROUNDOFF[self.name]

    @property
    def tiny(self) -> float:
        return UNDERFLOW[self.name]

    @property
    def eps_f(self) -> float:
        """Relative error of exp, log, log1p, tanh: k ulp ≤ 2ku (eq. R6)."""
        return 2 * FUNCTION_ULPS * self.u

    def gamma(self, n: int) -> float:
        """γ_n (eq. R2), or γ̃_n(1) ≈ √n u (eq. R30, λ applied at the end), for a sum of n terms; inf when nu >= 1."""
        n = max(int(n), 1)
        u = self.u
        if n * u >= 1:  # eq. R2: no bound of this kind exists; the element is unbounded
            return math.inf
        worst = n * u / (1 - n * u)
        if self.method == "worst_case":
            return worst
        return min(math.expm1(math.sqrt(n) * u + n * u * u / (1 - u)), worst)

    def probability(self) -> float:
        """Lower bound, under the model of eq. R30, on the probability that one sum stays within
        its bound (Azuma-Hoeffding: 1 − 2e^(−λ²/2)); 1 for the worst case."""
        if self.method == "worst_case":
            return 1.0
        return max(0.0, 1 - 2 * math.exp(-self.lam**2 / 2))


def as_precision(bounds, method: str = "worst_case", lam: float = 4.0) -> Precision:
    """``"float32"`` (or a :class:`Precision`) as a :class:`Precision`."""
    if isinstance(bounds, Precision):
        return bounds
    if isinstance(bounds, np.dtype) or isinstance(bounds, type):
        bounds = np.dtype(bounds).name
    return Precision(str(bounds), method=method, lam=lam)


@dataclass
class Bounds:
    """Elementwise bounds (float arrays) or kink masks (bool arrays), shaped as the pass.

    Indexed as :class:`indexnet.nn.network.Backprop`: layer l at ``l-1`` in ``Z``, ``A``,
    ``Delta``, ``H``, ``grads``; ``X`` is the bound of the input's own rounding and ``dX``
    that of ∂J/∂X.
    """

    loss: float | bool
    X: np.ndarray
    dX: np.ndarray
    Z: list
    A: list
    Delta: list
    H: list
    grads: list
    precision: Precision | None = None
    kink: "Bounds | None" = field(default=None, repr=False)


# ------------------------------------------------------------------------------ helpers
def _flat(a):
    return a.reshape(-1, a.shape[-1])


def _activation_constant(kind: int, p: Precision) -> float:
    """c of eq. R9: the relative rounding of σ itself."""
    u = p.u
    return {CODES["identity"]: 0.0, CODES["relu"]: 0.0, CODES["leaky_relu"]: 2 * u,
            CODES["sigmoid"]: p.eps_f + 3 * u, CODES["tanh"]: p.eps_f, CODES["softplus"]: 2 * p.eps_f + 2 * u}[kind]


def _reach(weights_abs: np.ndarray, mask: np.ndarray, fn) -> np.ndarray:
    """Where a masked element reaches through a contraction: fn on 0/1 arrays, > 0."""
    return fn(weights_abs, mask.astype(np.float64)) > 0


def _window_candidates(X, E_X, Z, E_Z_at, k, stride):
    """cand[c, i, j, n, t]: tap t of each max-pool window within the perturbation of the maximum (eq. R29)."""
    V = np.lib.stride_tricks.sliding_window_view(X, (k, k), axis=(1, 2))[:, ::stride, ::stride]
    EV = np.lib.stride_tricks.sliding_window_view(E_X, (k, k), axis=(1, 2))[:, ::stride, ::stride]
    V = V.reshape(V.shape[:4] + (k * k,))
    EV = EV.reshape(EV.shape[:4] + (k * k,))
    return (Z[..., None] - V) <= (E_Z_at[..., None] + EV)


def _scatter_taps(T, k, stride, shape):
    """out[c, s·i+u, s·j+v, n] += T[c, i, j, n, u·k+v] (the col2im of pooling.md, on masks)."""
    out = np.zeros(shape)
    Ho, Wo = T.shape[1], T.shape[2]
    for u in range(k):
        for v in range(k):
            out[:, u : u + stride * Ho : stride, v : v + stride * Wo : stride] += T[..., u * k + v]
    return out


# ------------------------------------------------------------------------------ the pass
def network_bounds(net, bp, X: np.ndarray, Y: np.ndarray, precision="float32", *, engine: str = "numpy",
                   method: str = "worst_case", lam: float = 4.0) -> Bounds:
    """Elementwise bounds of every quantity of one pass (eq. R31), samples last.

    Parameters
    ----------
    net : Network
        The float64 network (its layers and parameters).
    bp : Backprop
        ``net.backward(X, Y)`` in float64 (the reference values).
    X, Y : ndarray
        The pass's inputs and targets, samples last, float64.
    precision : str or Precision
        ``"float32"``, ``"float16"``, ``"bfloat16"``, or a :class:`Precision`.
    engine : {"numpy", "loops", "literal"}
        Which form of the bound kernels to run.
    method, lam
        The kind of bound when ``precision`` is a name (see :class:`Precision`).

    Returns
    -------
    Bounds
        With ``kink`` set to the masks of the elements that have no bound. An element whose
        sums have nu >= 1 (eq. R2; bfloat16 reaches it at 256 terms) has the bound inf.
    """
    p = as_precision(precision, method, lam)
    check_choice("engine", engine, ("literal", "loops", "numpy"))
    with np.errstate(invalid="ignore", over="ignore"):  # γ_n = inf times exact zeros: inf (R2)
        return _network_bounds(net, bp, X, Y, p, engine)


def _unbounded_as_inf(x):
    """NaN (an infinite γ_n times an exact zero, eq. R2) means no bound: inf."""
    return np.where(np.isnan(x), np.inf, x) if np.ndim(x) else (math.inf if math.isnan(x) else x)


def _network_bounds(net, bp, X, Y, p: Precision, engine: str) -> Bounds:
    """The pass of :func:`network_bounds`."""

    def k(name):
        return getattr(R, f"{name}_{engine}")

    u, tiny, g = p.u, p.tiny, p.gamma
    rss = p.method == "probabilistic"

    def prop(fn, values, errors, n, q, tiny_, g_par=0.0):
        """A contraction's bound: a sum of n terms with exact value q, g_par the parameters' own
        rounding (R4). Worst case (eq. R5): γ_n Σ|x||y| plus the operands' errors, linearly.
        Probabilistic (eq. R30): the sum's own rounding u·sqrt(n (Σ (x y)² + q²)), and the
        operands' errors in root-sum-square, sqrt(Σ (x E_y)² + (E_x y)² + (g_par x y)²)."""
        if not rss:
            return fn(values, errors, g(n) + g_par, tiny_)
        squares = [v * v for v in values]
        zeros = [np.zeros_like(e) for e in errors]
        own = u * np.sqrt(n * (fn(squares, zeros, 1.0, 0.0) + q * q)) + tiny_
        carried = fn(squares, [e * e for e in errors], g_par * g_par, 0.0)
        return own + np.sqrt(carried)
    up = 0.0 if p.params_exact else u
    ux = 0.0 if p.inputs_exact else u
    s = p.safety * (p.lam if rss else 1.0)  # eq. R7; eq. R30: the probabilistic scale σ times λ
    L = len(net.layers)
    N = X.shape[-1]
    E_A = [ux * np.abs(X)]
    E_Z = []  # the parameters' own rounding is folded into g (eq. R8)
    for layer, prm, cache in zip(net.layers, net.params, bp.caches):
        A_prev, Ea = cache.A_prev, E_A[-1]
        if isinstance(layer, Dense):
            W, b = prm
            n = W.shape[1]
            Ez = prop(lambda V, E, g_, t_: k("dense_forward_bound")(*V, *E, g_, t_, np.empty_like(cache.Z)),
                      (W, A_prev, b), (Ea,), n + 1, cache.Z, 2 * (n + 1) * tiny, up)
        elif isinstance(layer, Conv2D):
            K, b = prm
            n = K.shape[1] * K.shape[2] * K.shape[3]
            Ez = prop(lambda V, E, g_, t_: k("conv_forward_bound")(*V, *E, g_, layer.stride, layer.pad, t_,
                                                                   np.empty_like(cache.Z)),
                      (K, A_prev, b), (Ea,), n + 1, cache.Z, 2 * (n + 1) * tiny, up)
        elif isinstance(layer, AvgPool2D):
            Ez = prop(lambda V, E, g_, t_: k("avgpool_bound")(*V, *E, layer.size, layer.stride, g_, t_,
                                                              np.empty_like(cache.Z)),
                      (A_prev,), (Ea,), layer.size**2 + 1, cache.Z, (layer.size**2 + 1) * tiny)
        elif isinstance(layer, MaxPool2D):
            Ez = k("maxpool_bound")(np.ascontiguousarray(Ea), layer.size, layer.stride, np.empty_like(cache.Z))
        elif isinstance(layer, Flatten):
            Ez = Ea.reshape(cache.Z.shape)
        else:
            raise TypeError(f"bounds: no rounding bound for layer {layer.spec()!r}")
        E_Z.append(Ez)
        act = getattr(layer, "activation", "identity")
        if act == "softmax":
            K_ = cache.Z.shape[0]
            Ea_out = k("softmax_bound")(cache.Z, cache.A, Ez, u, p.eps_f, g(K_ + 1), np.empty_like(Ez))
        elif act == "identity":
            Ea_out = Ez
        else:
            kind = CODES[act]
            Ea_out = np.empty_like(Ez)
            k("activation_bound")(_flat(cache.Z), _flat(cache.A), _flat(Ez), kind, float(layer.alpha),
                                  _activation_constant(kind, p), _flat(Ea_out))
            Ea_out += 3 * tiny
        E_A.append(Ea_out)

    # ---- loss value (eq. R19) and Δ^(L) (eqs. R15-R17)
    loss_fn = net.loss_fn
    last = bp.caches[-1]
    Zl, Al = _flat(last.Z), _flat(last.A)
    Yf = _flat(Y)
    Ezl, Eal = _flat(E_Z[-1]), _flat(E_A[-1])
    T = np.empty_like(Zl)
    lse = np.zeros(N)
    E_lse = np.zeros(N)
    if loss_fn.squared:
        code, g_loss = 0, g(Zl.size + 3)
    elif loss_fn.name == "cross_entropy":
        code = 1
        m = Zl.max(axis=0)
        Tsum = np.exp(Zl - m).sum(axis=0)
        lse = m + np.log(Tsum)
        E_lse = ((Al * Ezl).sum(axis=0) + g(Zl.shape[0]) + p.eps_f + (Al * u * np.abs(Zl - m)).sum(axis=0)
                 + p.eps_f * np.abs(np.log(Tsum)) + u * np.abs(lse))
        g_loss = g(Zl.size + 2)
    else:
        code, g_loss = 2, g(Zl.size + 2)
    with np.errstate(invalid="ignore", over="ignore"):  # g_loss = inf (nu >= 1) times a zero term
        k("loss_value_bound")(code, Zl, Al, Yf, Eal, Ezl, lse, E_lse, u, p.eps_f, g_loss, T)
    scale = loss_fn.scale(N) if loss_fn.squared else 1.0 / N
    E_loss = scale * float(T.sum()) + 2 * u * abs(bp.loss) + Zl.size * tiny
    if not math.isfinite(E_loss):
        E_loss = math.inf

    shape_L = last.A.shape
    if loss_fn.squared:
        E_delta_L = k("squared_error_delta_bound")(Al, Yf, Eal, 2 * loss_fn.scale(N), u, np.empty_like(Al))
    elif loss_fn.name == "cross_entropy":  # from Z, as losses.md L6b computes it
        E_delta_L = k("cross_entropy_delta_bound")(Zl, Yf, Ezl, u, p.eps_f, g(Zl.shape[0]) + 3 * u, 1.0 / N,
                                                   np.empty_like(Al))
    else:  # from Z, as losses.md L9b computes it
        E_delta_L = k("binary_cross_entropy_delta_bound")(Zl, Yf, Ezl, u, p.eps_f, 1.0 / N, np.empty_like(Al))
    E_delta_L = (E_delta_L + 3 * tiny).reshape(shape_L)

    # ---- backward (eqs. R11, R12, R14, R18, R20-R29)
    E_D = [None] * (L + 1)
    M_D = [None] * (L + 1)
    E_H, M_H = [None] * L, [None] * L
    E_G, M_G = [None] * L, [None] * L
    E_D[L] = E_delta_L
    M_D[L] = np.zeros(shape_L, bool)
    fused = loss_fn.output_activation is not None
    for l in range(L, 0, -1):
        layer, prm, cache = net.layers[l - 1], net.params[l - 1], bp.caches[l - 1]
        Ed, Md = E_D[l], M_D[l]
        act = getattr(layer, "activation", "identity")
        Ez = E_Z[l - 1]
        if l == L and fused:
            Eh = k("fused_output_grad_bound")(Al, Yf, Eal, u, np.empty_like(Al)).reshape(cache.Z.shape) + 3 * tiny
            Mh = np.zeros(cache.Z.shape, bool)
        elif act == "softmax":
            Eh = k("softmax_jvp_bound")(cache.A, bp.Delta[l - 1], E_A[l], Ed, u, g(cache.A.shape[0]), np.empty_like(Ed))
            Eh += 3 * cache.A.shape[0] * tiny
            Mh = np.zeros(Md.shape, bool)
        elif act == "identity" or isinstance(layer, (MaxPool2D, AvgPool2D, Flatten)):
            Eh, Mh = Ed, np.zeros(Md.shape, bool)
        else:
            kind = CODES[act]
            Z2, A2, D2 = _flat(cache.Z), _flat(cache.A), _flat(bp.Delta[l - 1])
            dsig = activation_grad_numpy(Z2, A2, kind, float(layer.alpha), np.empty_like(Z2))
            Edsig = k("activation_grad_bound")(Z2, A2, _flat(Ez), _flat(E_A[l]), kind, u, p.eps_f, np.empty_like(Z2))
            Eh = k("hadamard_bound")(D2, dsig, _flat(Ed), Edsig, u, np.empty_like(Z2)) + 3 * tiny
            kink = k("kink")(Z2, s * _unbounded_as_inf(_flat(Ez)), kind, np.empty(Z2.shape, np.bool_))
            # eq. R10: at a kink either side's σ' may be taken; the jump |Δ| |1 − α| is carried
            # on as a finite error (so later quantities keep a bound), the element itself is masked
            jump = abs(1.0 - float(layer.alpha)) if act == "leaky_relu" else 1.0
            Eh += kink * (jump / s) * np.abs(D2)
            Eh = Eh.reshape(cache.Z.shape)
            Mh = kink.reshape(cache.Z.shape)
        E_H[l - 1], M_H[l - 1] = Eh, Mh
        H = bp.H[l - 1]
        A_prev, Ea_prev = cache.A_prev, E_A[l - 1]
        D_prev = bp.Delta[l - 2] if l > 1 else bp.dX  # the exact Δ^(l-1)
        if isinstance(layer, Dense):
            W, b = prm
            S_, N_ = H.shape
            Ew = prop(lambda V, E, g_, t_: k("weight_grad_bound")(*V, *E, g_, t_, np.empty_like(W)),
                      (H, A_prev), (Eh, Ea_prev), N_, bp.grads[l - 1]["W"], 2 * N_ * tiny)
            Eb = prop(lambda V, E, g_, t_: k("bias_grad_bound")(*V, *E, g_, t_, np.empty_like(b)),
                      (H,), (Eh,), N_, bp.grads[l - 1]["b"], N_ * tiny)
            E_G[l - 1] = {"W": Ew, "b": Eb}
            M_G[l - 1] = {"W": np.zeros(W.shape, bool), "b": np.zeros(b.shape, bool)}
            E_D[l - 1] = prop(lambda V, E, g_, t_: k("input_grad_bound")(*V, *E, g_, t_, np.empty_like(A_prev)),
                              (W, H), (Eh,), S_, D_prev, 2 * S_ * tiny, up)
            M_D[l - 1] = np.zeros(A_prev.shape, bool)
        elif isinstance(layer, Conv2D):
            K, b = prm
            terms = H.shape[1] * H.shape[2] * H.shape[3]
            Ek = prop(lambda V, E, g_, t_: k("conv_kernel_grad_bound")(*V, *E, g_, layer.stride, layer.pad, t_,
                                                                       np.empty_like(K)),
                      (H, A_prev), (Eh, Ea_prev), terms, bp.grads[l - 1]["K"], 2 * terms * tiny)
            Eb = prop(lambda V, E, g_, t_: k("conv_bias_grad_bound")(*V, *E, g_, t_, np.empty_like(b)),
                      (H,), (Eh,), terms, bp.grads[l - 1]["b"], terms * tiny)
            E_G[l - 1] = {"K": Ek, "b": Eb}
            M_G[l - 1] = {"K": np.zeros(K.shape, bool), "b": np.zeros(b.shape, bool)}
            taps = K.shape[0] * K.shape[2] * K.shape[3]
            E_D[l - 1] = prop(lambda V, E, g_, t_: k("conv_input_grad_bound")(*V, *E, g_, layer.stride, layer.pad,
                                                                              t_, np.empty_like(A_prev)),
                              (K, H), (Eh,), taps, D_prev, 2 * taps * tiny, up)
            M_D[l - 1] = np.zeros(A_prev.shape, bool)
        elif isinstance(layer, AvgPool2D):
            kk = layer.size**2
            E_G[l - 1], M_G[l - 1] = {}, {}
            E_D[l - 1] = prop(lambda V, E, g_, t_: k("avgpool_backward_bound")(*V, *E, layer.size, layer.stride, g_,
                                                                               t_, np.empty_like(A_prev)),
                              (H,), (Eh,), kk + 1, D_prev, (kk + 1) * tiny)
            M_D[l - 1] = np.zeros(A_prev.shape, bool)
        elif isinstance(layer, MaxPool2D):
            kk = layer.size**2
            E_G[l - 1], M_G[l - 1] = {}, {}
            arg = cache.extra["arg"]
            E_D[l - 1] = k("maxpool_backward_bound")(H, Eh, arg, layer.size, layer.stride, g(kk), kk * tiny,
                                                     np.empty_like(A_prev))
            # eq. R29: a window whose runner-up is within the perturbation of its maximum is a tie
            E_win = np.take_along_axis(
                np.lib.stride_tricks.sliding_window_view(Ea_prev, (layer.size,) * 2, axis=(1, 2))[
                    :, :: layer.stride, :: layer.stride].reshape(cache.Z.shape + (kk,)),
                arg[..., None], axis=-1)[..., 0]
            cand = _window_candidates(A_prev, s * Ea_prev, cache.Z, s * E_win, layer.size, layer.stride)
            tie = (cand.sum(axis=-1) > 1)[..., None] & cand
            # a tap of a tie window may receive H or nothing: |H| more, and the tap is masked
            E_D[l - 1] += _scatter_taps(tie * (np.abs(H)[..., None] / s), layer.size, layer.stride, A_prev.shape)
            M_D[l - 1] = _scatter_taps(tie.astype(np.float64), layer.size, layer.stride, A_prev.shape) > 0
        else:  # Flatten
            E_G[l - 1], M_G[l - 1] = {}, {}
            E_D[l - 1] = Eh.reshape(A_prev.shape)
            M_D[l - 1] = Mh.reshape(A_prev.shape)

    def scaled(x):
        return _unbounded_as_inf(x) * s

    bounds = Bounds(
        loss=s * E_loss, X=scaled(E_A[0]), dX=scaled(E_D[0]),
        Z=[scaled(e) for e in E_Z],
        A=[scaled(e) for e in E_A[1:]],
        Delta=[scaled(e) for e in E_D[1:]],
        H=[scaled(e) for e in E_H],
        grads=[{name: scaled(v) for name, v in gr.items()} for gr in E_G],
        precision=p,
    )
    kink = Bounds(
        loss=False, X=np.zeros(E_A[0].shape, bool), dX=M_D[0],
        Z=[np.zeros(e.shape, bool) for e in E_Z], A=[np.zeros(e.shape, bool) for e in E_A[1:]],
        Delta=M_D[1:], H=M_H, grads=M_G, precision=p,
    )
    return replace(bounds, kink=kink)
