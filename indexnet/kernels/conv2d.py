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

from indexnet._jit import exact, fastform, fastinline, fastserial, literal
from indexnet.kernels._delta import kron
from indexnet.kernels.activations import activate_row


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


# =========================================================================== fast forms
# The trainer's forms: the sums of C5, C7, C8 and C10 register-blocked over output
# channels and taps, compiled with the fast build's flags (the sums are reassociated;
# tests/test_fast_conv.py bounds |fast − loops| by rtol · Σ|terms|). Each first packs its
# input onto a zero frame in a buffer from the caller (the padded input P of eq. C4, or
# the framed, dilated G of eq. C10), so that no tap needs a bounds test; then, with
# stride 1, the axes (j, n) of one row of Z and of P are a single unit-stride run:
# Z_{o,i,j,n} at j·N + n reads P_{c,i+u,j+v,n} at j·N + n + v·N. Arrays are addressed
# through flat views (offsets written out), which keeps every inner loop one
# vectorizable sweep.
@fastserial
def _pack_rows(X, fy, fx, stride, t, P):
    """Row t = (c, y') of P: P_{c, y', x', n} = X_{c, y, x, n} where y' = fy + s·y and
    x' = fx + s·x, zero elsewhere. With s = 1 and fy = fx = p this is eq. C4's padding;
    with (fy, fx) = (kh − 1, kw − 1) and s the stride it is eq. C10's G (H dilated by s
    and framed)."""
    C, height, width, N = X.shape
    Hp, Wp = P.shape[1], P.shape[2]
    c, yp = t // Hp, t % Hp
    z = P.dtype.type(0)
    Pf = P.reshape(-1)
    p = Pf[(c * Hp + yp) * Wp * N:(c * Hp + yp + 1) * Wp * N]
    y = (yp - fy) // stride
    if yp < fy or (yp - fy) % stride != 0 or y >= height:
        for m in range(Wp * N):
            p[m] = z
        return
    x = X.reshape(-1)[(c * height + y) * width * N:(c * height + y + 1) * width * N]
    if stride == 1:
        for m in range(fx * N):
            p[m] = z
        for m in range((fx + width) * N, Wp * N):
            p[m] = z
        q = p[fx * N:(fx + width) * N]
        for m in range(width * N):
            q[m] = x[m]
    else:
        for m in range(Wp * N):
            p[m] = z
        for xx in range(width):
            q = p[(fx + stride * xx) * N:(fx + stride * xx + 1) * N]
            for n in range(N):
                q[n] = x[xx * N + n]


@fastinline
def _tap(K, o, c, u, v, flip):
    """W_ocuv of :func:`_correlate_rows`: K_ocuv, or with ``flip`` K_{c,o,kh−1−u,kw−1−v} (eq. C10)."""
    if flip:
        return K[c, o, K.shape[2] - 1 - u, K.shape[3] - 1 - v]
    return K[o, c, u, v]


@fastserial
def _correlate_rows(K, P, stride, off, i, o0, mo, Z, flip):
    """Z_{o,i,j,n} += Σ_c Σ_u Σ_v W_ocuv P_{c, s·i+u+off, s·j+v+off, n} for o = o0..o0+mo−1
    (mo <= 4), every j and n: the sum of eq. C5 (W = K, P the padded input, off = 0) and of
    eq. C10 (``flip``: W_ocuv = K_{c,o,kh−1−u,kw−1−v}, the flipped kernel with the channel
    axes swapped, P = G, s = 1, off = p) for one output row. (The flip is read through
    :func:`_tap`, so both sums share one compiled helper.)

    Register block: 4 output channels × 3 taps v, 12 weights in registers; each sweep
    loads 3 shifted runs of P and updates 4 runs of Z (12 multiply-adds per element).
    A run is the whole row (W_o·N values) when s = 1, else N values per j. Taps past kw
    repeat the last with weight 0; channels past mo take the one-row loop.
    """
    C_in, kh, kw = K.shape[0] if flip else K.shape[1], K.shape[2], K.shape[3]
    Hp, Wp = P.shape[1], P.shape[2]
    Ho, Wo, N = Z.shape[1], Z.shape[2], Z.shape[3]
    nseg, seg = (1, Wo * N) if stride == 1 else (Wo, N)
    Zf = Z.reshape(-1)
    Pf = P.reshape(-1)
    z = Z.dtype.type(0)
    for c in range(C_in):
        for u in range(kh):
            y = stride * i + u + off
            for v in range(0, kw, 3):
                v1, v2 = v + min(1, kw - 1 - v), v + min(2, kw - 1 - v)
                for a in range(1 if mo == 4 else mo):
                    o = o0 + a
                    w0, w1, w2 = (_tap(K, o, c, u, v, flip), _tap(K, o, c, u, v1, flip),
                            _tap(K, o, c, u, v2, flip))
                    if v1 == v:
                        w1 = z
                    if v2 == v1:
                        w2 = z
                    if mo == 4:
                        x0, x1, x2 = (_tap(K, o + 1, c, u, v, flip), _tap(K, o + 1, c, u, v1, flip),
                                _tap(K, o + 1, c, u, v2, flip))
                        y0, y1, y2 = (_tap(K, o + 2, c, u, v, flip), _tap(K, o + 2, c, u, v1, flip),
                                _tap(K, o + 2, c, u, v2, flip))
                        t0, t1, t2 = (_tap(K, o + 3, c, u, v, flip), _tap(K, o + 3, c, u, v1, flip),
                                _tap(K, o + 3, c, u, v2, flip))
                        if v1 == v:
                            x1, y1, t1 = z, z, z
                        if v2 == v1:
                            x2, y2, t2 = z, z, z
                    for g in range(nseg):
                        q0 = ((c * Hp + y) * Wp + stride * g + v + off) * N
                        q1 = q0 + (v1 - v) * N
                        q2 = q0 + (v2 - v) * N
                        r0 = ((o * Ho + i) * Wo + g) * N
                        if mo == 4:
                            q = Ho * Wo * N
                            z0, z1 = Zf[r0:r0 + seg], Zf[r0 + q:r0 + q + seg]
                            z2, z3 = Zf[r0 + 2 * q:r0 + 2 * q + seg], Zf[r0 + 3 * q:r0 + 3 * q + seg]
                            a0, a1, a2 = Pf[q0:q0 + seg], Pf[q1:q1 + seg], Pf[q2:q2 + seg]
                            for m in range(seg):
                                p0, p1, p2 = a0[m], a1[m], a2[m]
                                z0[m] += (w0 * p0 + w1 * p1) + w2 * p2
                                z1[m] += (x0 * p0 + x1 * p1) + x2 * p2
                                z2[m] += (y0 * p0 + y1 * p1) + y2 * p2
                                z3[m] += (t0 * p0 + t1 * p1) + t2 * p2
                        else:
                            z0 = Zf[r0:r0 + seg]
                            a0, a1, a2 = Pf[q0:q0 + seg], Pf[q1:q1 + seg], Pf[q2:q2 + seg]
                            for m in range(seg):
                                z0[m] += (w0 * a0[m] + w1 * a1[m]) + w2 * a2[m]


@fastform
def forward_activation_fast(K, A_prev, b, stride, pad, kind, alpha, Z, A, P):
    """Z_oijn = Σ_c Σ_u Σ_v K_ocuv P_{c, s·i+u, s·j+v, n} + b_o and A_oijn = σ(Z_oijn) in one pass. derivations/conv2d.md#C12

    Blocking: A_prev is packed onto its zero frame in ``P`` (C_in, height + 2p,
    width + 2p, N) (eq. C4; ``prange`` over its rows); then ``prange`` over (block of 4
    output channels o, output row i): each row is started at b_o, summed over (c, u, v)
    by :func:`_correlate_rows` (4 channels × 3 taps in registers, the inner loop over
    (j, n) unit-stride for s = 1), and σ is applied (``activations.activate_row``) while
    the row is still in cache. Performance contract: no allocation (``P`` from the
    caller), no bounds test in the inner loop, each Z_oijn summed inside one iteration.
    """
    C_out = K.shape[0]
    Ho, Wo, N = Z.shape[1], Z.shape[2], Z.shape[3]
    for t in prange(P.shape[0] * P.shape[1]):  # eq. C4
        _pack_rows(A_prev, pad, pad, 1, t, P)
    Zf, Af = Z.reshape(-1), A.reshape(-1)
    row = Wo * N
    for t in prange(((C_out + 3) // 4) * Ho):
        o0, i = 4 * (t // Ho), t % Ho
        mo = min(4, C_out - o0)
        for a in range(mo):
            r = ((o0 + a) * Ho + i) * row
            z, bo = Zf[r:r + row], b[o0 + a]
            for m in range(row):
                z[m] = bo
        _correlate_rows(K, P, stride, 0, i, o0, mo, Z, False)
        for a in range(mo):
            r = ((o0 + a) * Ho + i) * row
            activate_row(Zf[r:r + row], Af[r:r + row], kind, alpha)
    return A


@fastserial
def _kernel_sums(H, P, stride, o0, mo, c, u, v, v1, v2):
    """Σ_i Σ_j Σ_n H_{o,i,j,n} P_{c, s·i+u, s·j+v', n} for o = o0..o0+3 and v' = v, v1, v2:
    the 4 × 3 register block of eq. C7 (12 partial sums, each a vector accumulator under
    fastmath; channels past mo repeat the last, their sums unused). With s = 1 the sum over
    (j, n) is one unit-stride run of W_o·N values per row i."""
    Ho, Wo, N = H.shape[1], H.shape[2], H.shape[3]
    Hp, Wp = P.shape[1], P.shape[2]
    nseg, seg = (1, Wo * N) if stride == 1 else (Wo, N)
    Hf, Pf = H.reshape(-1), P.reshape(-1)
    o1, o2, o3 = o0 + min(1, mo - 1), o0 + min(2, mo - 1), o0 + min(3, mo - 1)
    z = H.dtype.type(0)
    c00 = z; c01 = z; c02 = z; c10 = z; c11 = z; c12 = z  # noqa: E702
    c20 = z; c21 = z; c22 = z; c30 = z; c31 = z; c32 = z  # noqa: E702
    for i in range(Ho):
        y = stride * i + u
        for g in range(nseg):
            q0 = ((c * Hp + y) * Wp + stride * g + v) * N
            q1, q2 = q0 + (v1 - v) * N, q0 + (v2 - v) * N
            a0, a1, a2 = Pf[q0:q0 + seg], Pf[q1:q1 + seg], Pf[q2:q2 + seg]
            r0, r1 = ((o0 * Ho + i) * Wo + g) * N, ((o1 * Ho + i) * Wo + g) * N
            r2, r3 = ((o2 * Ho + i) * Wo + g) * N, ((o3 * Ho + i) * Wo + g) * N
            h0, h1, h2, h3 = Hf[r0:r0 + seg], Hf[r1:r1 + seg], Hf[r2:r2 + seg], Hf[r3:r3 + seg]
            for m in range(seg):
                p0, p1, p2 = a0[m], a1[m], a2[m]
                x0, x1, x2, x3 = h0[m], h1[m], h2[m], h3[m]
                c00, c01, c02 = c00 + x0 * p0, c01 + x0 * p1, c02 + x0 * p2
                c10, c11, c12 = c10 + x1 * p0, c11 + x1 * p1, c12 + x1 * p2
                c20, c21, c22 = c20 + x2 * p0, c21 + x2 * p1, c22 + x2 * p2
                c30, c31, c32 = c30 + x3 * p0, c31 + x3 * p1, c32 + x3 * p2
    return c00, c01, c02, c10, c11, c12, c20, c21, c22, c30, c31, c32


@fastform
def kernel_grad_fast(H, A_prev, stride, pad, dK, P, packed=False):
    """∂J/∂K_ocuv = Σ_i Σ_j Σ_n H_oijn P_{c, s·i+u, s·j+v, n}, register-blocked. derivations/conv2d.md#C7

    Blocking: A_prev is packed onto its zero frame in ``P`` (eq. C4, ``prange`` over its
    rows); then ``prange`` over (block of 4 output channels o, input channel c); inside,
    for each tap row u and 3 taps v at a time, the 12 sums of the block run over i and
    (j, n) (:func:`_kernel_sums`), the inner loop unit-stride for s = 1. Performance
    contract: no allocation (``P`` from the caller), each ∂J/∂K_ocuv summed inside one
    iteration. With ``packed=True`` the caller vouches that ``P`` already holds A_prev on
    its zero frame (the forward pass of the same step packed it) and the packing is skipped.
    """
    C_out, C_in, kh, kw = dK.shape
    if not packed:
        for t in prange(P.shape[0] * P.shape[1]):  # eq. C4
            _pack_rows(A_prev, pad, pad, 1, t, P)
    for t in prange(((C_out + 3) // 4) * C_in):
        o0, c = 4 * (t // C_in), t % C_in
        mo = min(4, C_out - o0)
        for u in range(kh):
            for v in range(0, kw, 3):
                v1, v2 = v + min(1, kw - 1 - v), v + min(2, kw - 1 - v)
                sums = _kernel_sums(H, P, stride, o0, mo, c, u, v, v1, v2)
                for a in range(mo):
                    dK[o0 + a, c, u, v] = sums[3 * a]
                    dK[o0 + a, c, u, v1] = sums[3 * a + 1] if v1 > v else dK[o0 + a, c, u, v1]
                    dK[o0 + a, c, u, v2] = sums[3 * a + 2] if v2 > v1 else dK[o0 + a, c, u, v2]
    return dK


@fastform
def bias_grad_fast(H, db):
    """∂J/∂b_o = Σ_i Σ_j Σ_n H_oijn, ``prange`` over o, the sum one unit-stride run. derivations/conv2d.md#C8

    Performance contract: no allocation, inner loop over (i, j, n) unit-stride.
    """
    C_out = H.shape[0]
    size = H.shape[1] * H.shape[2] * H.shape[3]
    Hf = H.reshape(-1)
    for o in prange(C_out):
        h = Hf[o * size:(o + 1) * size]
        acc = db.dtype.type(0)
        for m in range(size):
            acc += h[m]
        db[o] = acc
    return db


@fastform
def input_grad_fast(K, H, stride, pad, Delta_prev, G):
    """∂J/∂X_cyxn = Σ_o Σ_i Σ_j H_oijn K_{o,c,y+p-s·i,x+p-s·j}, register-blocked. derivations/conv2d.md#C9

    Computed as eq. C10, Σ_o Σ_u' Σ_v' G_{o, y+p+u', x+p+v', n} K_{o, c, kh−1−u', kw−1−v'}: H is dilated by s and framed by kh − 1 rows and kw − 1 columns of zeros in
    ``G`` (C_out, height + 2p + kh − 1, width + 2p + kw − 1, N) (``prange`` over its rows),
    then correlated with the flipped kernel (K read with o and c swapped) over the
    cropped rows: ``prange`` over (block of 4 input channels c, input row y), each row
    summed over (o, u', v') by :func:`_correlate_rows` (4 channels × 3 taps in registers,
    the inner loop over (x, n) one unit-stride run). Performance contract: no allocation
    (``G`` from the caller), no bounds test in the inner loop, each Δ_cyxn summed inside
    one iteration. (With s > 1 most of G is zeros: the form is exact there, not fast.)
    """
    C_out, C_in, kh, kw = K.shape
    height, width, N = Delta_prev.shape[1], Delta_prev.shape[2], Delta_prev.shape[3]
    for t in prange(G.shape[0] * G.shape[1]):  # G of eq. C10
        _pack_rows(H, kh - 1, kw - 1, stride, t, G)
    Df = Delta_prev.reshape(-1)
    row = width * N
    z = Delta_prev.dtype.type(0)
    for t in prange(((C_in + 3) // 4) * height):
        c0, y = 4 * (t // height), t % height
        mc = min(4, C_in - c0)
        for a in range(mc):
            r = ((c0 + a) * height + y) * row
            d = Df[r:r + row]
            for m in range(row):
                d[m] = z
        _correlate_rows(K, G, 1, pad, y, c0, mc, Delta_prev, True)
    return Delta_prev
