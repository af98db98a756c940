"""Distortions: the bilinear warp and the separated Gaussian smoothing.

Beside ``derivations/augment.md``. Shapes (samples last)::

    A, out   (C, H, W, N)     images, and the warped images (same grid)
    Y, X     (H, W, N)        source point (y_pqn, x_pqn) of every output pixel, float64
    D, out   (C, H, W, N)     a field (C = 2 displacement components) and its smoothing
    g        (2r + 1,)        Gaussian weights, g[k + r] = g_k (eq. T3)

Index names follow the derivation: (p, q) output pixel, (u, v) input pixel, n sample,
c channel (or displacement component). Off the grid the image and the field are zero.
Every loops form visits only the terms the literal sum does not multiply by an exact
zero, in the literal order, so literal == loops bit for bit. Weights and sums are
float64; the result is stored in ``out``'s dtype.
"""
import numpy as np
from numba import prange

from indexnet._jit import exact, literal, serial


@serial
def tent(t):
    """κ(t) = max(0, 1 − |t|), the bilinear weight of derivations/augment.md#T1."""
    a = 1.0 - abs(t)
    return a if a > 0.0 else 0.0


@serial
def band(g, k):
    """g_k of derivations/augment.md#T3 extended by zero: g[k + r] for |k| ≤ r, else 0."""
    r = (g.shape[0] - 1) // 2
    if k < -r or k > r:
        return 0.0
    return g[k + r]


# ------------------------------------------------------------------------------ warp
@literal
def warp_literal(A, Y, X, out):
    """A′_cpqn = Σ_u Σ_v κ(y_pqn − u) κ(x_pqn − v) A_cuvn over the whole grid. derivations/augment.md#T1"""
    C, H, W, N = A.shape
    Ho, Wo = out.shape[1], out.shape[2]
    for c in range(C):
        for p in range(Ho):
            for q in range(Wo):
                for n in range(N):
                    acc = 0.0
                    for u in range(H):
                        for v in range(W):
                            acc += tent(Y[p, q, n] - u) * tent(X[p, q, n] - v) * A[c, u, v, n]
                    out[c, p, q, n] = acc
    return out


@exact
def warp_loops(A, Y, X, out):
    """A′_cpqn from the four pixels u ∈ {u₀, u₀+1}, v ∈ {v₀, v₀+1}, u₀ = ⌊y_pqn⌋, v₀ = ⌊x_pqn⌋. derivations/augment.md#T1

    ``prange`` over output rows (c, p). The two weights of each axis are computed once,
    κ(y − u₀) and κ(y − (u₀ + 1)), the values the literal form computes for those u. A
    neighbour off the grid gets weight zero (its index clamped onto the grid): an exact
    zero term, as every other term of the literal sum, so the loop has no branch.
    """
    C, H, W, N = A.shape
    Ho, Wo = out.shape[1], out.shape[2]
    for t in prange(C * Ho):
        c = np.int64(t) // Ho
        p = np.int64(t) % Ho
        for q in range(Wo):
            for n in range(N):
                y = Y[p, q, n]
                x = X[p, q, n]
                u0 = np.int64(np.floor(y))
                v0 = np.int64(np.floor(x))
                u1 = u0 + 1
                v1 = v0 + 1
                wy0 = tent(y - u0) if 0 <= u0 < H else 0.0
                wy1 = tent(y - u1) if 0 <= u1 < H else 0.0
                wx0 = tent(x - v0) if 0 <= v0 < W else 0.0
                wx1 = tent(x - v1) if 0 <= v1 < W else 0.0
                u0 = min(max(u0, 0), H - 1)
                u1 = min(max(u1, 0), H - 1)
                v0 = min(max(v0, 0), W - 1)
                v1 = min(max(v1, 0), W - 1)
                acc = 0.0
                acc += wy0 * wx0 * A[c, u0, v0, n]
                acc += wy0 * wx1 * A[c, u0, v1, n]
                acc += wy1 * wx0 * A[c, u1, v0, n]
                acc += wy1 * wx1 * A[c, u1, v1, n]
                out[c, p, q, n] = acc
    return out


def warp_numpy(A, Y, X, out):
    """A′ as four gathers of the corner pixels, each weighted and masked off the grid. derivations/augment.md#T1"""
    C, H, W, N = A.shape
    n = np.arange(N)
    y0 = np.floor(Y).astype(np.int64)
    x0 = np.floor(X).astype(np.int64)
    acc = np.zeros((C,) + Y.shape)
    for dy in (0, 1):
        u = y0 + dy
        wy = np.maximum(0.0, 1.0 - np.abs(Y - u))
        for dx in (0, 1):
            v = x0 + dx
            w = wy * np.maximum(0.0, 1.0 - np.abs(X - v))
            inside = (u >= 0) & (u < H) & (v >= 0) & (v < W)
            pix = A[:, np.clip(u, 0, H - 1), np.clip(v, 0, W - 1), n]
            acc += np.where(inside, w, 0.0) * pix
    out[...] = acc
    return out


# ---------------------------------------------------------------- smoothing, columns
@literal
def smooth_columns_literal(D, g, out):
    """E_dpvn = Σ_u g_{p−u} D_duvn over the whole column, g zero beyond radius r. derivations/augment.md#T4"""
    C, H, W, N = D.shape
    for d in range(C):
        for p in range(H):
            for v in range(W):
                for n in range(N):
                    acc = 0.0
                    for u in range(H):
                        acc += band(g, p - u) * D[d, u, v, n]
                    out[d, p, v, n] = acc
    return out


@exact
def smooth_columns_loops(D, g, out):
    """E_dpvn = Σ_{u=max(0,p−r)}^{min(H−1,p+r)} g_{p−u} D_duvn, ``prange`` over rows (d, p). derivations/augment.md#T4

    Each iteration owns the row out[d, p] and adds the terms u in increasing order to
    every element of it (the inner loops over (v, n) are contiguous and vectorize); with
    a float64 ``out`` the sums are those of :func:`smooth_columns_literal`, bit for bit.
    """
    C, H, W, N = D.shape
    r = (g.shape[0] - 1) // 2
    for t in prange(C * H):
        d = np.int64(t) // H  # the prange index may be unsigned: p - r below can be negative
        p = np.int64(t) % H
        for v in range(W):
            for n in range(N):
                out[d, p, v, n] = 0.0
        for u in range(max(p - r, 0), min(p + r + 1, H)):
            w = g[p - u + r]
            for v in range(W):
                for n in range(N):
                    out[d, p, v, n] += w * D[d, u, v, n]
    return out


def smooth_columns_numpy(D, g, out):
    """E = Σ_k g_k D shifted by k rows, zero-filled. derivations/augment.md#T4"""
    H = D.shape[1]
    r = (g.shape[0] - 1) // 2
    acc = np.zeros(D.shape)
    for k in range(-r, r + 1):  # E[p] += g_k D[p − k]
        if abs(k) < H:
            acc[:, max(k, 0) : H + min(k, 0)] += g[k + r] * D[:, max(-k, 0) : H - max(k, 0)]
    out[...] = acc
    return out


# ------------------------------------------------------------------- smoothing, rows
@literal
def smooth_rows_literal(E, g, out):
    """D̄_dpqn = Σ_v g_{q−v} E_dpvn over the whole row, g zero beyond radius r. derivations/augment.md#T5"""
    C, H, W, N = E.shape
    for d in range(C):
        for p in range(H):
            for q in range(W):
                for n in range(N):
                    acc = 0.0
                    for v in range(W):
                        acc += band(g, q - v) * E[d, p, v, n]
                    out[d, p, q, n] = acc
    return out


@exact
def smooth_rows_loops(E, g, out):
    """D̄_dpqn = Σ_{v=max(0,q−r)}^{min(W−1,q+r)} g_{q−v} E_dpvn, ``prange`` over rows (d, p). derivations/augment.md#T5

    Samples innermost (contiguous); with a float64 ``out`` the sums are those of
    :func:`smooth_rows_literal`, bit for bit.
    """
    C, H, W, N = E.shape
    r = (g.shape[0] - 1) // 2
    for t in prange(C * H):
        d = np.int64(t) // H
        p = np.int64(t) % H
        for q in range(W):
            for n in range(N):
                out[d, p, q, n] = 0.0
            for v in range(max(q - r, 0), min(q + r + 1, W)):
                w = g[q - v + r]
                for n in range(N):
                    out[d, p, q, n] += w * E[d, p, v, n]
    return out


def smooth_rows_numpy(E, g, out):
    """D̄ = Σ_k g_k E shifted by k columns, zero-filled. derivations/augment.md#T5"""
    W = E.shape[2]
    r = (g.shape[0] - 1) // 2
    acc = np.zeros(E.shape)
    for k in range(-r, r + 1):
        if abs(k) < W:
            acc[:, :, max(k, 0) : W + min(k, 0)] += g[k + r] * E[:, :, max(-k, 0) : W - max(k, 0)]
    out[...] = acc
    return out
