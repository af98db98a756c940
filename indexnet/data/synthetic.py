"""Seed 003's two regression sets: fitting f(x) = x² (its Figure 2) and approximating
points on a sphere (its Figure 1).

Square
    ``x`` drawn uniformly from ``[low, high]`` (default ``[-1, 1]``, where the parabola
    is symmetric and its values stay in ``[0, 1]``), target ``t = x²``. One input, one
    output.

Sphere
    The seed shows only a figure, "Approximation points on a sphere", without saying
    what the network maps to what. We take the map from the two angles to the point:

        input  (θ, φ)          polar angle θ ∈ [0, π], azimuth φ ∈ [-π, π)
        output (x, y, z) = (sin θ cos φ, sin θ sin φ, cos θ)

    Why this formulation and not ``(x, y) → z = ±√(1 − x² − y²)``: the angle map is a
    single-valued, smooth function on the whole sphere, so a network can approximate
    every point of it and the fitted outputs can be drawn as points on a sphere (the
    figure). The height-field form covers only one hemisphere per sign (z is not a
    function of (x, y)), and its slope is infinite at the equator, which a small
    network fits badly. Points are drawn uniformly over the sphere's surface
    (φ uniform, cos θ uniform on [-1, 1]), so the poles are not over-sampled. Inputs are
    scaled by 1/π (scaling ``{"method": "divide", "value": π}``), putting θ/π in [0, 1]
    and φ/π in [-1, 1).

Both sets are drawn from ``numpy.random.default_rng(seed)`` and split at random
(seeded, unstratified) with :func:`indexnet.data.dataset.split_indices`.
"""
from __future__ import annotations

import math

import numpy as np

from indexnet._validate import check_positive_int

from .dataset import Splits, make_splits, split_indices


def _regression_splits(
    raw_X: np.ndarray, T: np.ndarray, name: str, seed: int, val_fraction: float, test_fraction: float,
    scaling: dict, dtype, info: dict,
) -> Splits:
    """Seeded random split of generated inputs ``raw_X`` (features × N) and targets ``T``."""
    parts = split_indices(raw_X.shape[1], val_fraction, test_fraction, seed)
    info = {"method": "random", "seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction, **info}
    return make_splits(raw_X, parts, info, T=T, name=name, scaling=scaling, dtype=dtype)


def load_square(
    n: int = 1000,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    *,
    low: float = -1.0,
    high: float = 1.0,
    dtype=np.float64,
) -> Splits:
    """Seed 003's f(x) = x²: ``x ~ U[low, high]``, target ``x²``; X and T of shape (1, N).

    Split: seeded random, test and validation ``ceil(n · fraction)``; with the defaults
    **700 / 100 / 200**. Inputs are not rescaled (scaling ``{"method": "none"}``).

    Parameters
    ----------
    n : int
        Number of points in all three splits together.
    seed : int
        Seeds both the points and the split.
    val_fraction, test_fraction : float
        Fractions in [0, 1) of ``n``.
    low, high : float
        The interval of x.
    dtype : float32 or float64

    Returns
    -------
    Splits
    """
    n = check_positive_int("n", n, minimum=3)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"low, high: expected finite numbers with low < high, got {low!r}, {high!r}")
    x = np.random.default_rng(seed).uniform(low, high, size=(1, n))
    return _regression_splits(x, x**2, "square", seed, val_fraction, test_fraction, {"method": "none"}, dtype,
                              {"low": float(low), "high": float(high)})


def sphere_point(angles: np.ndarray) -> np.ndarray:
    """The unit-sphere point of raw angles ``(θ, φ)`` of shape (2, N): returns (3, N)."""
    theta, phi = angles
    return np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)])


def load_sphere(
    n: int = 2000,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    *,
    dtype=np.float64,
) -> Splits:
    """Seed 003's points on a sphere: input angles ``(θ, φ)`` → the point ``(x, y, z)``.

    X has shape (2, N) (θ/π and φ/π; scaling ``{"method": "divide", "value": π}``),
    T has shape (3, N) on the unit sphere. Points are uniform over the surface. See the
    module docstring for why this formulation.

    Split: seeded random, test and validation ``ceil(n · fraction)``; with the defaults
    **1400 / 200 / 400**.

    Parameters
    ----------
    n, seed, val_fraction, test_fraction, dtype
        As for :func:`load_square`: points in all, the seed of points and split, the
        split fractions, the float dtype.

    Returns
    -------
    Splits
    """
    n = check_positive_int("n", n, minimum=3)
    rng = np.random.default_rng(seed)
    phi = rng.uniform(-math.pi, math.pi, size=n)
    theta = np.arccos(rng.uniform(-1.0, 1.0, size=n))
    angles = np.stack([theta, phi])
    return _regression_splits(angles, sphere_point(angles), "sphere", seed, val_fraction, test_fraction,
                              {"method": "divide", "value": math.pi}, dtype, {})
