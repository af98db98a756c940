"""Max and average pooling: forward and backward passes.

Beside ``derivations/pooling.md``. Shapes (samples last)::

    A_prev, Delta_prev  (C, height, width, N)          input A^(l-1) (X in the derivation), Δ^(l-1)
    Z, H                (C, height_out, width_out, N)  pooled output and H = ∂J/∂Z
    arg                 (C, height_out, width_out, N)  int64, the winning tap u·k + v of each max-pool window

    height_out = (height - k) // s + 1,   width_out = (width - k) // s + 1      (no padding)

Window k × k, stride s; (i, j) output position, (u, v) tap inside the window, (y, x)
input position, n sample. Ties in a max-pool window go to the first maximum in
row-major tap order (u, then v), as ``numpy.argmax`` does. The loops forms are
bit-identical to the literal forms: max is exact, and each input gradient element
receives its terms in the order i, j of the literal sum.
"""
import numpy as np
from numba import prange

from indexnet._jit import exact, literal
from indexnet.kernels._delta import kron


def _windows(A_prev, k, stride):
    """Strided view V[c, i, j, n, u, v] = A_prev[c, s·i+u, s·j+v, n]."""
    view = np.lib.stride_tricks.sliding_window_view(A_prev, (k, k), axis=(1, 2))
    return view[:, ::stride, ::stride]


# ------------------------------------------------------------------ max-pool forward
@literal
def maxpool_forward_literal(A_prev, k, stride, Z, arg):
    """Z_cijn = max_{u,v} X_{c, s·i+u, s·j+v, n}, argmax kept in ``arg``. derivations/pooling.md#P2"""
    C, height_out, width_out, N = Z.shape
    for c in range(C):
        for i in range(height_out):
            for j in range(width_out):
                for n in range(N):
                    best = A_prev[c, stride * i, stride * j, n]
                    where = 0
                    for u in range(k):
                        for v in range(k):
                            if A_prev[c, stride * i + u, stride * j + v, n] > best:
                                best = A_prev[c, stride * i + u, stride * j + v, n]
                                where = u * k + v
                    Z[c, i, j, n] = best
                    arg[c, i, j, n] = where
    return Z


@exact
def maxpool_forward_loops(A_prev, k, stride, Z, arg):
    """Z_cijn = max_{u,v} X_{c, s·i+u, s·j+v, n}, ``prange`` over rows (c, i). derivations/pooling.md#P2

    Taps in the outer loops, samples innermost; a strict ``>`` keeps the first maximum.
    """
    C, height_out, width_out, N = Z.shape
    for t in prange(C * height_out):
        c = t // height_out
        i = t % height_out
        for j in range(width_out):
            for n in range(N):
                Z[c, i, j, n] = A_prev[c, stride * i, stride * j, n]
                arg[c, i, j, n] = 0
            for u in range(k):
                for v in range(k):
                    for n in range(N):
                        if A_prev[c, stride * i + u, stride * j + v, n] > Z[c, i, j, n]:
                            Z[c, i, j, n] = A_prev[c, stride * i + u, stride * j + v, n]
                            arg[c, i, j, n] = u * k + v
    return Z


def maxpool_forward_numpy(A_prev, k, stride, Z, arg):
    """Max and first argmax over each flattened window. derivations/pooling.md#P2"""
    V = _windows(A_prev, k, stride)
    V = V.reshape(V.shape[:4] + (k * k,))
    np.copyto(arg, np.argmax(V, axis=-1))
    np.copyto(Z, np.take_along_axis(V, arg[..., None], axis=-1)[..., 0])
    return Z


# ----------------------------------------------------------------- max-pool backward
@literal
def maxpool_backward_literal(H, arg, k, stride, Delta_prev):
    """∂J/∂X_cyxn = Σ_i Σ_j H_cijn δ(y, s·i+u*) δ(x, s·j+v*), (u*, v*) from ``arg``. derivations/pooling.md#P3"""
    C, height, width, N = Delta_prev.shape
    height_out, width_out = H.shape[1], H.shape[2]
    one = Delta_prev.dtype.type(1)
    for c in range(C):
        for y in range(height):
            for x in range(width):
                for n in range(N):
                    acc = Delta_prev.dtype.type(0)
                    for i in range(height_out):
                        for j in range(width_out):
                            a = arg[c, i, j, n]
                            acc += (
                                H[c, i, j, n]
                                * kron(y, stride * i + a // k, one)
                                * kron(x, stride * j + a % k, one)
                            )
                    Delta_prev[c, y, x, n] = acc
    return Delta_prev


@exact
def maxpool_backward_loops(H, arg, k, stride, Delta_prev):
    """∂J/∂A_prev: each H_cijn routed to its window's winner, ``prange`` over channels c. derivations/pooling.md#P3

    One iteration owns the whole slice Delta_prev[c], so the scatter has no race; each element
    receives its terms in the order i, j, as in :func:`maxpool_backward_literal`.
    """
    C, N = Delta_prev.shape[0], Delta_prev.shape[3]
    height_out, width_out = H.shape[1], H.shape[2]
    for c in prange(C):
        Delta_prev[c] = 0
        for i in range(height_out):
            for j in range(width_out):
                for n in range(N):
                    a = arg[c, i, j, n]
                    Delta_prev[c, stride * i + a // k, stride * j + a % k, n] += H[c, i, j, n]
    return Delta_prev


def _scatter_taps(T, k, stride, Delta_prev):
    """Delta_prev[c, s·i+u, s·j+v, n] += T[c, i, j, n, u·k+v], one tap at a time (col2im)."""
    Delta_prev.fill(0)
    height_out, width_out = T.shape[1], T.shape[2]
    for u in range(k):
        for v in range(k):
            Delta_prev[:, u : u + stride * height_out : stride, v : v + stride * width_out : stride] += T[..., u * k + v]
    return Delta_prev


def maxpool_backward_numpy(H, arg, k, stride, Delta_prev):
    """∂J/∂A_prev = H spread over a one-hot mask of the winners, summed back tap by tap. derivations/pooling.md#P3"""
    mask = arg[..., None] == np.arange(k * k)
    return _scatter_taps(mask * H[..., None], k, stride, Delta_prev)


# ------------------------------------------------------------------ avg-pool forward
@literal
def avgpool_forward_literal(A_prev, k, stride, Z):
    """Z_cijn = (Σ_u Σ_v X_{c, s·i+u, s·j+v, n}) / k². derivations/pooling.md#P4"""
    C, height_out, width_out, N = Z.shape
    kk = Z.dtype.type(k * k)
    for c in range(C):
        for i in range(height_out):
            for j in range(width_out):
                for n in range(N):
                    acc = Z.dtype.type(0)
                    for u in range(k):
                        for v in range(k):
                            acc += A_prev[c, stride * i + u, stride * j + v, n]
                    Z[c, i, j, n] = acc / kk
    return Z


@exact
def avgpool_forward_loops(A_prev, k, stride, Z):
    """Z_cijn = (Σ_u Σ_v X_{c, s·i+u, s·j+v, n}) / k², ``prange`` over rows (c, i). derivations/pooling.md#P4"""
    C, height_out, width_out, N = Z.shape
    kk = Z.dtype.type(k * k)
    for t in prange(C * height_out):
        c = t // height_out
        i = t % height_out
        for j in range(width_out):
            for n in range(N):
                Z[c, i, j, n] = 0
            for u in range(k):
                for v in range(k):
                    for n in range(N):
                        Z[c, i, j, n] += A_prev[c, stride * i + u, stride * j + v, n]
            for n in range(N):
                Z[c, i, j, n] /= kk
    return Z


def avgpool_forward_numpy(A_prev, k, stride, Z):
    """Window means. derivations/pooling.md#P4"""
    np.copyto(Z, _windows(A_prev, k, stride).sum(axis=(4, 5)) / (k * k))
    return Z


# ----------------------------------------------------------------- avg-pool backward
@literal
def avgpool_backward_literal(H, k, stride, Delta_prev):
    """∂J/∂X_cyxn = Σ_i Σ_j Σ_u Σ_v (H_cijn / k²) δ(y, s·i+u) δ(x, s·j+v). derivations/pooling.md#P5"""
    C, height, width, N = Delta_prev.shape
    height_out, width_out = H.shape[1], H.shape[2]
    one = Delta_prev.dtype.type(1)
    kk = Delta_prev.dtype.type(k * k)
    for c in range(C):
        for y in range(height):
            for x in range(width):
                for n in range(N):
                    acc = Delta_prev.dtype.type(0)
                    for i in range(height_out):
                        for j in range(width_out):
                            for u in range(k):
                                for v in range(k):
                                    acc += (
                                        H[c, i, j, n] / kk
                                        * kron(y, stride * i + u, one)
                                        * kron(x, stride * j + v, one)
                                    )
                    Delta_prev[c, y, x, n] = acc
    return Delta_prev


@exact
def avgpool_backward_loops(H, k, stride, Delta_prev):
    """∂J/∂A_prev: each H_cijn / k² spread over its window, ``prange`` over channels c. derivations/pooling.md#P5

    One iteration owns Delta_prev[c]; each element receives its terms in the order i, j of
    :func:`avgpool_backward_literal`.
    """
    C, N = Delta_prev.shape[0], Delta_prev.shape[3]
    height_out, width_out = H.shape[1], H.shape[2]
    kk = Delta_prev.dtype.type(k * k)
    for c in prange(C):
        Delta_prev[c] = 0
        for i in range(height_out):
            for j in range(width_out):
                for u in range(k):
                    for v in range(k):
                        for n in range(N):
                            Delta_prev[c, stride * i + u, stride * j + v, n] += H[c, i, j, n] / kk
    return Delta_prev


def avgpool_backward_numpy(H, k, stride, Delta_prev):
    """∂J/∂A_prev = H / k² copied to every tap, summed back tap by tap. derivations/pooling.md#P5"""
    T = np.broadcast_to((H / (k * k))[..., None], H.shape + (k * k,))
    return _scatter_taps(T, k, stride, Delta_prev)
