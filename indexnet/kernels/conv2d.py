"""2-D convolution (cross-correlation): forward pass, kernel/bias/input gradients.

Beside ``derivations/conv2d.md``. Arguments come in the order of the dense kernels
(weights, then A_prev, then b; outputs last). Shapes (samples last)::

    A_prev      (C_in, height, width, N)          input A^(l-1) (X in the derivation)
    K           (C_out, C_in, kh, kw)             kernels
    b           (C_out,)                          biases
    Z, H        (C_out, height_out, width_out, N) pre-activation, and H = ∂J/∂Z
    Delta_prev  (C_in, height, width, N)          Δ^(l-1) = ∂J/∂A^(l-1)

    height_out = (height + 2p - kh) // s + 1,   width_out = (width + 2p - kw) // s + 1

Index names follow the derivation: o output channel, c input channel, (i, j) output
position, (u, v) kernel tap (the seed's m, n), (y, x) input position, n sample,
s stride, p zero padding. Input position y = s·i + u - p; taps that fall into the
padding contribute exact zeros, which the literal forms add and the loops forms skip.
Every loops form is bit-identical to its literal form in float64 (same surviving terms,
same order; the skipped terms are exact zeros added to a sum that is never -0).
"""
import numpy as np
from numba import prange

from indexnet._jit import exact, literal
from indexnet.kernels._delta import kron


def out_size(size, k, stride, pad):
    """Output extent ⌊(size + 2p - k)/s⌋ + 1 of one spatial axis. derivations/conv2d.md#C3"""
    return (size + 2 * pad - k) // stride + 1


# ----------------------------------------------------------------------------- forward
@literal
def forward_literal(K, A_prev, b, stride, pad, Z):
    """Z_oijn = Σ_c Σ_u Σ_v Σ_y Σ_x K_ocuv δ(y, s·i+u-p) δ(x, s·j+v-p) X_cyxn + b_o. derivations/conv2d.md#C5

    The zero padding is kept as the two deltas of eq. C4: every input position is
    visited, and only the one a tap lands on survives.
    """
    C_out, C_in, kh, kw = K.shape
    height, width, N = A_prev.shape[1], A_prev.shape[2], A_prev.shape[3]
    height_out, width_out = Z.shape[1], Z.shape[2]
    one = Z.dtype.type(1)
    for o in range(C_out):
        for i in range(height_out):
            for j in range(width_out):
                for n in range(N):
                    acc = Z.dtype.type(0)
                    for c in range(C_in):
                        for u in range(kh):
                            for v in range(kw):
                                for y in range(height):
                                    for x in range(width):
                                        acc += (
                                            K[o, c, u, v]
                                            * kron(y, stride * i + u - pad, one)
                                            * kron(x, stride * j + v - pad, one)
                                            * A_prev[c, y, x, n]
                                        )
                    Z[o, i, j, n] = acc + b[o]
    return Z


@exact
def forward_loops(K, A_prev, b, stride, pad, Z):
    """Z_oijn = Σ_c Σ_u Σ_v K_ocuv X_{c, s·i+u-p, s·j+v-p, n} + b_o. derivations/conv2d.md#C5

    ``prange`` over output rows (o, i); per element the taps are summed in the order
    c, u, v of :func:`forward_literal`, so the two agree bit for bit. The innermost loop
    over n is a unit-stride axpy (Z[o,i,j,:] += K_ocuv A_prev[c,y,x,:]).
    """
    C_out, C_in, kh, kw = K.shape
    height, width, N = A_prev.shape[1], A_prev.shape[2], A_prev.shape[3]
    height_out, width_out = Z.shape[1], Z.shape[2]
    for t in prange(C_out * height_out):
        o = t // height_out
        i = t % height_out
        for j in range(width_out):
            for n in range(N):
                Z[o, i, j, n] = 0
            for c in range(C_in):
                for u in range(kh):
                    y = stride * i + u - pad
                    if y < 0 or y >= height:
                        continue
                    for v in range(kw):
                        x = stride * j + v - pad
                        if x < 0 or x >= width:
                            continue
                        w = K[o, c, u, v]
                        for n in range(N):
                            Z[o, i, j, n] += w * A_prev[c, y, x, n]
            for n in range(N):
                Z[o, i, j, n] += b[o]
    return Z


def _windows(A_prev, kh, kw, stride, pad):
    """Strided view P[c, i, j, n, u, v] = X_pad[c, s·i+u, s·j+v, n] (im2col without copying)."""
    A_pad = np.pad(A_prev, ((0, 0), (pad, pad), (pad, pad), (0, 0))) if pad else A_prev
    view = np.lib.stride_tricks.sliding_window_view(A_pad, (kh, kw), axis=(1, 2))
    return view[:, ::stride, ::stride]


def forward_numpy(K, A_prev, b, stride, pad, Z):
    """Z = K ⋆ X_pad + b as one tensor contraction over (c, u, v). derivations/conv2d.md#C5"""
    P = _windows(A_prev, K.shape[2], K.shape[3], stride, pad)
    np.copyto(Z, np.tensordot(K, P, axes=([1, 2, 3], [0, 4, 5])))
    Z += b[:, None, None, None]
    return Z


# -------------------------------------------------------------------------- ∂J/∂K
@literal
def kernel_grad_literal(H, A_prev, stride, pad, dK):
    """∂J/∂K_o'cuv = Σ_o Σ_i Σ_j Σ_y Σ_x Σ_n H_oijn δ(o, o') δ(y, s·i+u-p) δ(x, s·j+v-p) X_cyxn. derivations/conv2d.md#C7

    The unreduced chain rule: the delta over output channels and the two padding deltas
    of eq. C4 are kept, as :func:`forward_literal` keeps them. Every input position is
    visited and only the one the tap lands on survives; a tap in the padding lands on
    none, so its terms are exact zeros.
    """
    C_out, C_in, kh, kw = dK.shape
    height, width, N = A_prev.shape[1], A_prev.shape[2], A_prev.shape[3]
    height_out, width_out = H.shape[1], H.shape[2]
    one = dK.dtype.type(1)
    for op in range(C_out):
        for c in range(C_in):
            for u in range(kh):
                for v in range(kw):
                    acc = dK.dtype.type(0)
                    for o in range(C_out):
                        for i in range(height_out):
                            for j in range(width_out):
                                for y in range(height):
                                    for x in range(width):
                                        for n in range(N):
                                            acc += (
                                                H[o, i, j, n]
                                                * kron(o, op, one)
                                                * kron(y, stride * i + u - pad, one)
                                                * kron(x, stride * j + v - pad, one)
                                                * A_prev[c, y, x, n]
                                            )
                    dK[op, c, u, v] = acc
    return dK


@exact
def kernel_grad_loops(H, A_prev, stride, pad, dK):
    """∂J/∂K_ocuv = Σ_i Σ_j Σ_n H_oijn X_{c, s·i+u-p, s·j+v-p, n}. derivations/conv2d.md#C7

    ``prange`` over kernel slices (o, c); each element's sum runs i, j, n in order,
    bit-identical to :func:`kernel_grad_literal`. The reduction over n does not
    vectorize without fastmath; the fast build lets it.
    """
    C_out, C_in, kh, kw = dK.shape
    height, width, N = A_prev.shape[1], A_prev.shape[2], A_prev.shape[3]
    height_out, width_out = H.shape[1], H.shape[2]
    for t in prange(C_out * C_in):
        o = t // C_in
        c = t % C_in
        for u in range(kh):
            for v in range(kw):
                acc = dK.dtype.type(0)
                for i in range(height_out):
                    y = stride * i + u - pad
                    if y < 0 or y >= height:
                        continue
                    for j in range(width_out):
                        x = stride * j + v - pad
                        if x < 0 or x >= width:
                            continue
                        for n in range(N):
                            acc += H[o, i, j, n] * A_prev[c, y, x, n]
                dK[o, c, u, v] = acc
    return dK


def kernel_grad_numpy(H, A_prev, stride, pad, dK):
    """∂J/∂K = H ⋆ X_pad, one contraction over (i, j, n). derivations/conv2d.md#C7"""
    P = _windows(A_prev, dK.shape[2], dK.shape[3], stride, pad)
    np.copyto(dK, np.tensordot(H, P, axes=([1, 2, 3], [1, 2, 3])))
    return dK


# -------------------------------------------------------------------------- ∂J/∂b
@literal
def bias_grad_literal(H, db):
    """∂J/∂b_o' = Σ_o Σ_i Σ_j Σ_n H_oijn δ(o, o'). derivations/conv2d.md#C8"""
    C_out, height_out, width_out, N = H.shape
    one = db.dtype.type(1)
    for op in range(C_out):
        acc = db.dtype.type(0)
        for o in range(C_out):
            for i in range(height_out):
                for j in range(width_out):
                    for n in range(N):
                        acc += H[o, i, j, n] * kron(o, op, one)
        db[op] = acc
    return db


@exact
def bias_grad_loops(H, db):
    """∂J/∂b_o = Σ_i Σ_j Σ_n H_oijn, ``prange`` over o. derivations/conv2d.md#C8"""
    C_out, height_out, width_out, N = H.shape
    for o in prange(C_out):
        acc = db.dtype.type(0)
        for i in range(height_out):
            for j in range(width_out):
                for n in range(N):
                    acc += H[o, i, j, n]
        db[o] = acc
    return db


def bias_grad_numpy(H, db):
    """∂J/∂b = Σ over (i, j, n) of H. derivations/conv2d.md#C8"""
    np.sum(H, axis=(1, 2, 3), out=db)
    return db


# ---------------------------------------------------------------- ∂J/∂A_prev = Δ^(l-1)
@literal
def input_grad_literal(K, H, stride, pad, Delta_prev):
    """∂J/∂X_cyxn = Σ_o Σ_i Σ_j Σ_u Σ_v H_oijn K_ocuv δ(y, s·i+u-p) δ(x, s·j+v-p). derivations/conv2d.md#C9

    Every output position and every tap is visited; the deltas keep the ones whose tap
    lands on (y, x).
    """
    C_out, C_in, kh, kw = K.shape
    height, width, N = Delta_prev.shape[1], Delta_prev.shape[2], Delta_prev.shape[3]
    height_out, width_out = H.shape[1], H.shape[2]
    one = Delta_prev.dtype.type(1)
    for c in range(C_in):
        for y in range(height):
            for x in range(width):
                for n in range(N):
                    acc = Delta_prev.dtype.type(0)
                    for o in range(C_out):
                        for i in range(height_out):
                            for j in range(width_out):
                                for u in range(kh):
                                    for v in range(kw):
                                        acc += (
                                            H[o, i, j, n]
                                            * K[o, c, u, v]
                                            * kron(y, stride * i + u - pad, one)
                                            * kron(x, stride * j + v - pad, one)
                                        )
                    Delta_prev[c, y, x, n] = acc
    return Delta_prev


@exact
def input_grad_loops(K, H, stride, pad, Delta_prev):
    """∂J/∂X_cyxn = Σ_o Σ_i Σ_j H_oijn K_{o,c,y+p-s·i,x+p-s·j}, ``prange`` over (c, y). derivations/conv2d.md#C9

    Each delta is solved for its tap, u = y + p - s·i, and only the output positions
    i with 0 <= u < kh are visited, in increasing i (so decreasing u: the flipped
    kernel of eq. C10). The surviving terms come in the order o, i, j of
    :func:`input_grad_literal`, so the two agree bit for bit; the innermost loop over n
    is a unit-stride axpy.
    """
    C_out, C_in, kh, kw = K.shape
    height, width, N = Delta_prev.shape[1], Delta_prev.shape[2], Delta_prev.shape[3]
    height_out, width_out = H.shape[1], H.shape[2]
    for t in prange(C_in * height):
        c = t // height
        y = t % height
        # i such that 0 <= y + p - s·i <= kh - 1
        i_lo = max(0, (y + pad - kh + stride) // stride)
        i_hi = min(height_out - 1, (y + pad) // stride)
        for x in range(width):
            j_lo = max(0, (x + pad - kw + stride) // stride)
            j_hi = min(width_out - 1, (x + pad) // stride)
            for n in range(N):
                Delta_prev[c, y, x, n] = 0
            for o in range(C_out):
                for i in range(i_lo, i_hi + 1):
                    u = y + pad - stride * i
                    for j in range(j_lo, j_hi + 1):
                        w = K[o, c, u, x + pad - stride * j]
                        for n in range(N):
                            Delta_prev[c, y, x, n] += H[o, i, j, n] * w
    return Delta_prev


def input_grad_numpy(K, H, stride, pad, Delta_prev):
    """∂J/∂A_prev = full correlation of the dilated H with the flipped kernel, cropped (eq. C10). derivations/conv2d.md#C9

    H is spread onto a zero grid with step s (the dilation), framed by kh-1 and kw-1
    zeros; for each tap (u', v') of the flipped kernel the shifted grid is contracted
    over o with K[:, :, kh-1-u', kw-1-v'] and added. The result lives on the padded
    input and is cropped by p.
    """
    C_out, C_in, kh, kw = K.shape
    _, height, width, N = Delta_prev.shape
    _, height_out, width_out, _ = H.shape
    height_pad, width_pad = height + 2 * pad, width + 2 * pad
    G = np.zeros((C_out, height_pad + kh - 1, width_pad + kw - 1, N), dtype=H.dtype)
    G[:, kh - 1 : kh - 1 + stride * height_out : stride, kw - 1 : kw - 1 + stride * width_out : stride] = H
    dP = np.zeros((C_in, height_pad, width_pad, N), dtype=Delta_prev.dtype)
    for u in range(kh):
        for v in range(kw):
            dP += np.tensordot(K[:, :, kh - 1 - u, kw - 1 - v], G[:, u : u + height_pad, v : v + width_pad], axes=(0, 0))
    np.copyto(Delta_prev, dP[:, pad : pad + height, pad : pad + width])
    return Delta_prev
