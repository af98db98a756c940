"""Random distortions of training images: affine and elastic (``derivations/augment.md``).

:class:`Affine` draws the source points of eq. T2 for every sample, :class:`Elastic`
Simard's smoothed random displacement of eq. T6; :class:`Augmenter` adds them up and
warps a batch with eq. T1. Every draw comes from the counter-based generator of eq. T7:
one 64-bit key per batch, taken from the Generator it is given, fixes all of the
batch's draws (draw j of sample n is a hash of (key, n, j))::

    aug = parse_augment("affine:rotate=10,shift=2+elastic:34,4", image_shape=(1, 28, 28))
    X_distorted = aug(X, rng)           # X (784, N) or (1, 28, 28, N); a new array

``aug(X, rng)`` runs the fused float32 kernel ``distort_fast`` (eq. T8, what the trainer
uses); ``aug.reference(X, key)`` the same distortion from the exact float64 kernels
(T1, T4, T5, T7 ``_loops``). Both depend only on the key, not on the thread count.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from indexnet._validate import check_real

__all__ = ["Affine", "Elastic", "Augmenter", "parse_augment", "parse_distortions", "gaussian_weights", "affine_points",
           "band_matrix", "batch_key", "draws", "mirror_matrix"]


def gaussian_weights(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """The normalised 1-D Gaussian g_{-r..r} of eq. T3, r = ⌊truncate·σ + ½⌋ (as scipy.ndimage).

    Returns
    -------
    ndarray, shape (2r + 1,), float64
        ``g[k + r] = g_k``.
    """
    sigma = check_real("sigma", sigma, lo=0, lo_open=True)
    r = int(truncate * sigma + 0.5)
    k = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-0.5 * (k / sigma) ** 2)
    return g / g.sum()


def _grid(H: int, W: int, N: int) -> tuple[np.ndarray, np.ndarray]:
    """The identity source points y_pqn = p, x_pqn = q, shape (H, W, N)."""
    p = np.broadcast_to(np.arange(H, dtype=np.float64)[:, None, None], (H, W, N))
    q = np.broadcast_to(np.arange(W, dtype=np.float64)[None, :, None], (H, W, N))
    return np.array(p), np.array(q)


#: draw indices j of eq. T7: the affine parameters (θ, φ), (s_y, s_x), (τ_y, τ_x) are the two
#: halves of draws 0, 1, 2; the elastic field's (row, column) displacement at pixel (u, v)
#: the two halves of draw FIELD_J0 + u·W + v
AFFINE_DRAWS = (0, 1, 2)


def batch_key(rng: np.random.Generator) -> np.uint64:
    """The batch's key k of eq. T7: one uniform 64-bit integer from ``rng``."""
    return np.uint64(rng.integers(0, 2**64, dtype=np.uint64))


def draws(key, j0: int, J: int, N: int) -> np.ndarray:
    """U_hjn of eq. T7 for the draws j0 … j0 + J − 1 of samples 0 … N − 1: shape (2, J, N), float64."""
    from indexnet.kernels.augment import draws_loops

    return draws_loops(np.uint64(key), j0, np.empty((2, J, N)))


@dataclass(frozen=True)
class Affine:
    """A random affine map about the image centre (eq. T2), drawn anew for every sample.

    Parameters
    ----------
    rotate : float
        Largest rotation θ_max, degrees; θ ~ U(−θ_max, θ_max).
    shear : float
        Largest shear angle φ_max, degrees (rows slide sideways by tan φ per row).
    scale : float
        s_y, s_x ~ U(1 − scale, 1 + scale), independently.
    shift : float
        τ_y, τ_x ~ U(−shift, shift) pixels.
    """

    rotate: float = 10.0
    shear: float = 10.0
    scale: float = 0.1
    shift: float = 2.0

    def __post_init__(self) -> None:
        check_real("--augment affine rotate", self.rotate, lo=0, hi=180)
        check_real("--augment affine shear", self.shear, lo=0, hi=60)
        check_real("--augment affine scale", self.scale, lo=0, hi=1, hi_open=True)
        check_real("--augment affine shift", self.shift, lo=0)

    def ranges(self) -> np.ndarray:
        """(θ_max, φ_max in radians, s_max, τ_max), the ``affine`` argument of ``distort_fast``."""
        return np.array([np.deg2rad(self.rotate), np.deg2rad(self.shear), self.scale, self.shift])

    def matrices(self, key, N: int) -> tuple[np.ndarray, np.ndarray]:
        """M^(n) (shape (N, 2, 2)) and τ^(n) (shape (N, 2)) of eq. T2 from the draws 0, 1, 2 of eq. T7."""
        theta_max, phi_max, s_max, tau_max = self.ranges()
        U = draws(key, AFFINE_DRAWS[0], len(AFFINE_DRAWS), N)
        theta, phi = theta_max * U[0, 0], phi_max * U[1, 0]
        s = 1.0 + s_max * np.stack([U[0, 1], U[1, 1]], -1)
        tau = tau_max * np.stack([U[0, 2], U[1, 2]], -1)
        cos, sin, tan = np.cos(theta), np.sin(theta), np.tan(phi)
        R_inv = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], -2)  # R(−θ)
        S_inv = np.zeros((N, 2, 2))
        S_inv[:, 0, 0] = S_inv[:, 1, 1] = 1.0
        S_inv[:, 1, 0] = -tan  # S(−φ)
        M = (1.0 / s)[:, :, None] * (S_inv @ R_inv)  # diag(1/s_y, 1/s_x) S(−φ) R(−θ)
        return M, tau

    def source_points(self, key, H: int, W: int, N: int) -> tuple[np.ndarray, np.ndarray]:
        """(y_pqn, x_pqn) of eq. T2, each of shape (H, W, N), float64."""
        M, tau = self.matrices(key, N)
        return affine_points(M, tau, H, W)

    def spec(self) -> str:
        """The canonical ``--augment`` string of this distortion."""
        return f"affine:rotate={self.rotate:g},shear={self.shear:g},scale={self.scale:g},shift={self.shift:g}"


def affine_points(M: np.ndarray, tau: np.ndarray, H: int, W: int) -> tuple[np.ndarray, np.ndarray]:
    """Eq. T2 for given M (N, 2, 2) and τ (N, 2): source points (y, x), each (H, W, N)."""
    cy, cx = (H - 1) / 2.0, (W - 1) / 2.0
    ry = (np.arange(H, dtype=np.float64) - cy)[:, None, None] - tau[None, None, :, 0]  # p − c_y − τ_y
    rx = (np.arange(W, dtype=np.float64) - cx)[None, :, None] - tau[None, None, :, 1]  # q − c_x − τ_x
    Y = cy + M[:, 0, 0] * ry + M[:, 0, 1] * rx
    X = cx + M[:, 1, 0] * ry + M[:, 1, 1] * rx
    return np.ascontiguousarray(Y), np.ascontiguousarray(X)


@dataclass(frozen=True)
class Elastic:
    """Simard's elastic distortion (eqs. T3–T6): α times a σ-smoothed U(−1, 1) field.

    Parameters
    ----------
    alpha : float
        Scale α of the smoothed displacement, pixels (Simard: 34 on 28×28 digits).
    sigma : float
        Width σ of the Gaussian, pixels (Simard: 4).
    """

    alpha: float = 34.0
    sigma: float = 4.0

    def __post_init__(self) -> None:
        check_real("--augment elastic alpha", self.alpha, lo=0)
        check_real("--augment elastic sigma", self.sigma, lo=0, lo_open=True)

    def field(self, key, H: int, W: int, N: int) -> np.ndarray:
        """D of eq. T6: the U(−1, 1) draws of eq. T7, D_duvn = U_d,(FIELD_J0 + uW + v),n; (2, H, W, N)."""
        from indexnet.kernels.augment import FIELD_J0

        return draws(key, FIELD_J0, H * W, N).reshape(2, H, W, N)

    def displacement(self, key, H: int, W: int, N: int) -> np.ndarray:
        """α D̄: the field smoothed by eqs. T4 and T5 (exact float64 kernels) times α; (2, H, W, N)."""
        from indexnet.kernels.augment import smooth_columns_loops, smooth_rows_loops

        g = gaussian_weights(self.sigma)
        D = self.field(key, H, W, N)
        E = smooth_columns_loops(D, g, np.empty_like(D))
        smooth_rows_loops(E, g, D)
        D *= self.alpha
        return D

    def spec(self) -> str:
        """The canonical ``--augment`` string of this distortion."""
        return f"elastic:{self.alpha:g},{self.sigma:g}"


def _taps(g: np.ndarray, k: np.ndarray) -> np.ndarray:
    """g_k of eq. T3 for an integer array k, zero beyond the radius (float64)."""
    r = (g.shape[0] - 1) // 2
    return np.where(np.abs(k) <= r, g[np.clip(k + r, 0, 2 * r)], 0.0)


def band_matrix(g: np.ndarray, n: int) -> np.ndarray:
    """G_pu = g_{p−u} (zero beyond the radius) for p, u < n: the matrix form of eqs. T4 and T5, float32."""
    return _taps(g, np.arange(n)[:, None] - np.arange(n)[None, :]).astype(np.float32)


def mirror_matrix(g: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The mirrored smoothing matrix G′ of eq. T8 and its row pairs' column intervals.

    With h = ⌈n/2⌉, e = ⌊n/2⌋: ``G`` (n, n) float32 holds P_pu = (g_{p−u} + g_{p+u−n+1}) / 2 at
    (p, u), p, u < h, and Q_pu = (g_{p−u} − g_{p+u−n+1}) / 2 at (n − 1 − p, n − 1 − u), p, u < e,
    zero elsewhere; computed in float64 and rounded once. ``R`` (⌈n/2⌉, 4) int64: for rows 2i,
    2i + 1 (or the last row alone), two intervals [R_i0, R_i1), [R_i2, R_i3) of columns outside
    which both rows are zero (the columns :func:`indexnet.kernels.augment._band_sums` visits).
    """
    h, e = (n + 1) // 2, n // 2
    p, u = np.arange(h)[:, None], np.arange(h)[None, :]
    a, b = _taps(g, p - u), _taps(g, p + u - n + 1)
    G = np.zeros((n, n))
    G[:h, :h] = (a + b) / 2
    G[n - 1 - p[:e], n - 1 - u[:, :e]] = ((a - b) / 2)[:e, :e]
    R = np.zeros(((n + 1) // 2, 4), np.int64)
    for i in range(R.shape[0]):
        cols = np.flatnonzero((G[2 * i] != 0) | (G[min(2 * i + 1, n - 1)] != 0))
        runs = np.split(cols, np.flatnonzero(np.diff(cols) > 1) + 1) if cols.size else []
        while len(runs) > 2:  # join the two runs with the smallest gap (the zeros between are exact zero terms)
            gaps = [runs[j + 1][0] - runs[j][-1] for j in range(len(runs) - 1)]
            j = int(np.argmin(gaps))
            runs[j:j + 2] = [np.arange(runs[j][0], runs[j + 1][-1] + 1)]
        for k, run in enumerate(runs):
            R[i, 2 * k:2 * k + 2] = run[0], run[-1] + 1
    return G.astype(np.float32), R


class Augmenter:
    """Distorts image batches: affine source points (eq. T2) plus elastic displacement (eq. T6), one warp (eq. T1).

    Parameters
    ----------
    distortions : sequence of Affine and/or Elastic
        At most one of each.
    image_shape : (C, H, W)
        The images' shape; batches may come flat, ``(C·H·W, N)``, or as ``(C, H, W, N)``.

    Raises
    ------
    ValueError
        No distortion, two of one kind, or a shape that is not an image.
    """

    def __init__(self, distortions: Sequence[Affine | Elastic], image_shape: Sequence[int]):
        kinds = [type(d).__name__ for d in distortions]
        if not distortions or len(set(kinds)) != len(kinds) or not all(isinstance(d, (Affine, Elastic)) for d in distortions):
            raise ValueError(f"--augment: expected affine, elastic or both (once each), got {kinds}")
        if image_shape is None or len(tuple(image_shape)) != 3:
            raise ValueError(f"--augment: expected images of shape (C, H, W), got data with image_shape {image_shape}")
        self.image_shape = tuple(int(s) for s in image_shape)
        self.affine = next((d for d in distortions if isinstance(d, Affine)), None)
        self.elastic = next((d for d in distortions if isinstance(d, Elastic)), None)
        _, H, W = self.image_shape
        g = gaussian_weights(self.elastic.sigma if self.elastic is not None else 1.0)
        self._Gc, self._Gr = mirror_matrix(g, H), mirror_matrix(g, W)
        self._ranges = self.affine.ranges() if self.affine is not None else np.zeros(4)
        self._alpha = float(self.elastic.alpha) if self.elastic is not None else 0.0
        self._scratch: dict[int, tuple[np.ndarray, ...]] = {}

    def spec(self) -> str:
        """The canonical ``--augment`` string."""
        return "+".join(d.spec() for d in (self.affine, self.elastic) if d is not None)

    def __repr__(self) -> str:
        return f"Augmenter({self.spec()!r}, image_shape={self.image_shape})"

    def source_points(self, key, N: int) -> tuple[np.ndarray, np.ndarray]:
        """Source points of the whole batch (float64, exact kernels): affine (or the identity), plus the
        elastic displacement; each (H, W, N)."""
        _, H, W = self.image_shape
        if self.affine is not None:
            Y, X = self.affine.source_points(key, H, W, N)
        else:
            Y, X = _grid(H, W, N)
        if self.elastic is not None:
            D = self.elastic.displacement(key, H, W, N)
            Y += D[0]
            X += D[1]
        return Y, X

    def _images(self, X: np.ndarray) -> np.ndarray:
        shape = X.shape
        if len(shape) < 2 or math.prod(shape[:-1]) != math.prod(self.image_shape):  # (math.prod: µs per batch less)
            raise ValueError(f"X: expected a batch of images {self.image_shape} (flat or not) with samples last, "
                             f"got shape {shape}")
        return np.ascontiguousarray(X).reshape(self.image_shape + (shape[-1],))

    def __call__(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A distorted copy of the batch ``X`` (same shape and dtype): one key from ``rng`` (eq. T7), then
        :meth:`distort`."""
        return self.distort(X, batch_key(rng))

    def distort(self, X: np.ndarray, key) -> np.ndarray:
        """The batch distorted with the draws of ``key``: the fused float32 kernel (eq. T8)."""
        from indexnet.kernels.augment import LANES, distort_fast

        A = self._images(X)
        C, H, W, N = A.shape
        if N not in self._scratch:  # a training run sees two batch sizes at most (the last may be short)
            B = -(-N // LANES)
            if len(self._scratch) >= 4:
                self._scratch.clear()
            self._scratch[N] = (np.empty((B, 2, H, LANES * W), np.float32), np.empty((B, 2, W, LANES * H), np.float32),
                                np.empty((B, 6, LANES), np.float32),
                                np.empty((B, 2 * C * (H + 3) * (W + 2) * LANES), np.float32))
        F, S, M, P = self._scratch[N]
        out = np.empty_like(A)
        distort_fast(A, key, self._ranges, self._alpha, *self._Gc, *self._Gr, F, S, M, P, out)
        return out.reshape(X.shape)

    def reference(self, X: np.ndarray, key) -> np.ndarray:
        """The same distortion from the exact float64 kernels (T2, T4–T7, then T1); same shape and dtype."""
        from indexnet.kernels.augment import warp_loops

        A = self._images(X)
        Y, Xs = self.source_points(key, A.shape[-1])
        out = warp_loops(A.astype(np.float64), Y, Xs, np.empty(A.shape))
        return out.astype(X.dtype).reshape(X.shape)


_AFFINE_KEYS = ("rotate", "shear", "scale", "shift")
_ELASTIC_KEYS = ("alpha", "sigma")


def _parse_one(part: str) -> Affine | Elastic:
    kind, _, opts = part.strip().partition(":")
    kind = kind.strip().lower()
    if kind not in ("affine", "elastic"):
        raise ValueError(f"--augment: expected affine[:rotate=R,shear=S,scale=Z,shift=T] or "
                         f"elastic[:ALPHA,SIGMA], got {part!r}")
    keys = _AFFINE_KEYS if kind == "affine" else _ELASTIC_KEYS
    values: dict[str, float] = {}
    items = [s.strip() for s in opts.split(",")] if opts.strip() else []
    keyed = False
    for i, item in enumerate(items):
        key, eq, text = item.partition("=")
        keyed = keyed or bool(eq)
        if not eq:
            if i >= len(keys) or keyed:
                raise ValueError(f"--augment {kind}: expected {','.join(keys)} in order or key=value pairs, got {opts!r}")
            key, text = keys[i], item
        key = key.strip().lower()
        if key not in keys:
            raise ValueError(f"--augment {kind}: unknown option {key!r}; expected some of {list(keys)}")
        if key in values:
            raise ValueError(f"--augment {kind}: option {key!r} given twice in {opts!r}")
        try:
            values[key] = float(text)
        except ValueError:
            raise ValueError(f"--augment {kind} {key}: expected a number, got {text.strip()!r}") from None
        if not math.isfinite(values[key]):
            raise ValueError(f"--augment {kind} {key}: expected a finite number, got {text.strip()!r}")
    return Affine(**values) if kind == "affine" else Elastic(**values)


def parse_augment(spec: str | None, image_shape: Sequence[int] | None) -> Augmenter | None:
    """An :class:`Augmenter` from an ``--augment`` string; None for None, ``""`` or ``"none"``.

    Forms: ``affine``, ``affine:rotate=10,shear=10,scale=0.1,shift=2`` (or the four
    numbers in that order), ``elastic``, ``elastic:34,4`` (α, σ; or ``alpha=34,sigma=4``),
    and both joined by ``+``. Defaults: see :class:`Affine` and :class:`Elastic`.

    Raises
    ------
    ValueError
        An unknown kind or option, a value that is not a number or out of range, or data
        that are not images; the message names ``--augment``.
    """
    distortions = parse_distortions(spec)
    return None if not distortions else Augmenter(distortions, image_shape)


def parse_distortions(spec: str | None) -> list[Affine | Elastic]:
    """The distortions an ``--augment`` string names (see :func:`parse_augment`); [] for none.

    Raises
    ------
    ValueError
        As :func:`parse_augment`, without the data check.
    """
    if spec is None:
        return []
    if not isinstance(spec, str):
        raise ValueError(f"--augment: expected a string, got {spec!r}")
    if spec.strip().lower() in ("", "none"):
        return []
    distortions = [_parse_one(part) for part in spec.split("+")]
    kinds = [type(d).__name__.lower() for d in distortions]
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"--augment: expected affine, elastic or both (once each), got {spec!r}")
    return distortions
