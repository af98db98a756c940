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

from indexnet._jit import exact, fastform, fastinline, fastserial, literal
from indexnet.kernels._delta import kron
from indexnet.kernels.activations import RELU, hadamard_run, sigma_prime_inlined


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


# =========================================================================== fast forms
# The trainer's max-pool forms: the same max and the same routing as the loops forms
# (max is exact, so the forward agrees bit for bit), addressed through flat views so
# that every inner loop over the N samples of one (c, y, x) is a vectorizable sweep.
@fastform
def maxpool_forward_fast(A_prev, k, stride, Z, arg):
    """Z_cijn = max_{u,v} X_{c, s·i+u, s·j+v, n}, the first maximising tap kept in ``arg``. derivations/pooling.md#P2

    ``prange`` over output rows (c, i); per window the taps are compared in row-major
    order with a strict ``>`` (the first maximum wins), the inner loop over n a
    unit-stride select. Performance contract: no allocation, each Z_cijn inside one
    iteration.
    """
    C, height, width, N = A_prev.shape
    Ho, Wo = Z.shape[1], Z.shape[2]
    Xf, Zf, Gf = A_prev.reshape(-1), Z.reshape(-1), arg.reshape(-1)
    for t in prange(C * Ho):
        c, i = t // Ho, t % Ho
        for j in range(Wo):
            r = ((c * Ho + i) * Wo + j) * N
            z, g = Zf[r:r + N], Gf[r:r + N]
            q = ((c * height + stride * i) * width + stride * j) * N
            x = Xf[q:q + N]
            for n in range(N):
                z[n] = x[n]
                g[n] = 0
            for u in range(k):
                for v in range(k):
                    if u + v > 0:
                        q = ((c * height + stride * i + u) * width + stride * j + v) * N
                        x = Xf[q:q + N]
                        tap = u * k + v
                        for n in range(N):
                            better = x[n] > z[n]
                            z[n] = x[n] if better else z[n]
                            g[n] = tap if better else g[n]
    return Z


@fastserial
def _zero_uncovered(k, Ho, Wo, c, Delta_prev):
    """Delta_prev[c] = 0 where no window of a tiling (s = k) covers it: the rows and columns past the last window."""
    height, width, N = Delta_prev.shape[1], Delta_prev.shape[2], Delta_prev.shape[3]
    Df = Delta_prev.reshape(-1)
    base = c * height * width * N
    for y in range(height):
        lo = 0 if y >= k * Ho else k * Wo * N
        d = Df[base + y * width * N:base + (y + 1) * width * N]
        for m in range(lo, width * N):
            d[m] = 0


@fastserial
def _route_channel(H, arg, k, stride, c, Delta_prev):
    """Δ_{c, s·i+u*, s·j+v*, n} += H_cijn for every window of channel c (eq. P3), the rest of
    Delta_prev[c] zero. Windows that tile the input (s = k) are written, not added; the
    rows and columns past the last window are zeroed."""
    height, width, N = Delta_prev.shape[1], Delta_prev.shape[2], Delta_prev.shape[3]
    Ho, Wo = H.shape[1], H.shape[2]
    Df, Hf, Gf = Delta_prev.reshape(-1), H.reshape(-1), arg.reshape(-1)
    z = Delta_prev.dtype.type(0)
    base = c * height * width * N
    if stride != k:
        d = Df[base:base + height * width * N]
        for m in range(height * width * N):
            d[m] = z
    else:
        _zero_uncovered(k, Ho, Wo, c, Delta_prev)
    for i in range(Ho):
        for j in range(Wo):
            r = ((c * Ho + i) * Wo + j) * N
            h, g = Hf[r:r + N], Gf[r:r + N]
            for u in range(k):
                for v in range(k):
                    tap = u * k + v
                    q = base + ((stride * i + u) * width + stride * j + v) * N
                    d = Df[q:q + N]
                    if stride == k:
                        for n in range(N):
                            d[n] = h[n] if g[n] == tap else z
                    else:
                        for n in range(N):
                            d[n] += h[n] if g[n] == tap else z


@fastform
def maxpool_backward_fast(H, arg, k, stride, Delta_prev):
    """∂J/∂X_cyxn = Σ_i Σ_j H_cijn δ(y, s·i+u*) δ(x, s·j+v*), routed by ``arg``. derivations/pooling.md#P3

    ``prange`` over channels c (one iteration owns Delta_prev[c], so the scatter has no
    race); for each window and tap, the inner loop over n writes (s = k) or adds (s < k)
    H_cijn where the tap won, a unit-stride select. Performance contract: no allocation.
    """
    for c in prange(Delta_prev.shape[0]):
        _route_channel(H, arg, k, stride, c, Delta_prev)
    return Delta_prev


@fastform
def maxpool_backward_hadamard_bias_fast(H, arg, k, stride, Z, A, kind, alpha, H_prev, db):
    """H'_cyxn = σ'(Z_cyxn) Σ_i Σ_j H_cijn δ(y, s·i+u*) δ(x, s·j+v*) and ∂J/∂b_c = Σ_{y,x,n} H'_cyxn. derivations/pooling.md#P8

    P3 routes the pooled layer's H back to the convolution below it (Z, A its
    pre-activation and activation, ``kind``/``alpha`` its σ), then D2.13 multiplies by
    σ' (from Z or A as ``activations.SIGMA_PRIME_FROM_FAST`` declares) and C8 sums the
    convolution's bias gradient, all on one channel slice while it is in cache.
    ``prange`` over channels c; performance contract: no allocation, inner loops over n
    (and over the slice) unit-stride.
    """
    size = H_prev.shape[1] * H_prev.shape[2] * H_prev.shape[3]
    Zf, Af, Pf = Z.reshape(-1), A.reshape(-1), H_prev.reshape(-1)
    for c in prange(H_prev.shape[0]):
        if stride == k:  # tiling windows: route, σ' and the sum in one pass
            if kind == RELU:  # the branch on kind outside the loops, so that they vectorize
                db[c] = _route_hadamard_tiles(H, arg, k, c, Z, A, RELU, alpha, H_prev)
            else:  # (one specialised copy only: each costs compile time)
                db[c] = _route_hadamard_tiles(H, arg, k, c, Z, A, kind, alpha, H_prev)
            continue
        _route_channel(H, arg, k, stride, c, H_prev)
        p, zc, ac = Pf[c * size:(c + 1) * size], Zf[c * size:(c + 1) * size], Af[c * size:(c + 1) * size]
        if kind == RELU:  # the branch on kind outside the loop, so that the loop vectorizes
            db[c] = hadamard_run(p, zc, ac, RELU, alpha, p)
        else:
            db[c] = hadamard_run(p, zc, ac, kind, alpha, p)
    return H_prev


@fastinline
def _route_hadamard_tiles(H, arg, k, c, Z, A, kind, alpha, H_prev):
    """Channel c of P8 for windows that tile the input (s = k), in one pass: each input
    position of a window gets H_cijn σ'(Z_cyxn) where its tap won and 0 elsewhere, and the
    values are summed as they are stored (eq. C8); positions no window covers get 0."""
    height, width, N = H_prev.shape[1], H_prev.shape[2], H_prev.shape[3]
    Ho, Wo = H.shape[1], H.shape[2]
    Df, Hf, Gf, Zf, Af = H_prev.reshape(-1), H.reshape(-1), arg.reshape(-1), Z.reshape(-1), A.reshape(-1)
    _zero_uncovered(k, Ho, Wo, c, H_prev)
    z = H_prev.dtype.type(0)
    acc = z
    base = c * height * width * N
    for i in range(Ho):
        for j in range(Wo):
            r = ((c * Ho + i) * Wo + j) * N
            h, g = Hf[r:r + N], Gf[r:r + N]
            for u in range(k):
                for v in range(k):
                    tap = u * k + v
                    q = base + ((k * i + u) * width + k * j + v) * N
                    d, zc, ac = Df[q:q + N], Zf[q:q + N], Af[q:q + N]
                    for n in range(N):
                        x = h[n] * sigma_prime_inlined(zc[n], ac[n], kind, alpha)
                        x = x if g[n] == tap else z
                        d[n] = x
                        acc += x
    return acc
