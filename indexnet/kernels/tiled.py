"""Register-blocked, cache-tiled fastmath variants of the dense sums, for the trainer.

Beside ``derivations/dense.md``; the reading and oracle forms stay in
:mod:`indexnet.kernels.dense`. Every dense sum here is one shape of contraction, a
"dot-form" product whose summed index is the unit-stride one of both operands::

    C_pq = Σ_r P_pr Q_qr            (P: M × K, Q: Nq × K, C: M × Nq)

=====================  ======  ======  ======  =====================================
sum (equation)         p       q       r       operands
=====================  ======  ======  ======  =====================================
Z = W A + b   (D1.4)   i       n       j       P = W, Q = Aᵗ (packed once per call)
∂J/∂W = H Aᵗ  (D2.5)   i       j       n       P = H, Q = A (no packing)
Δ = Wᵗ H      (D2.25)  j       n       i       P = Wᵗ, Q = Hᵗ (both packed)
=====================  ======  ======  ======  =====================================

Tiles (:func:`gemm_nt`): each thread owns a contiguous range of 4-row blocks of p;
q is cut into cache tiles of ``q_tile`` rows (about 256 KiB of Q, half of the
512 KiB L2 of one core here) so a tile of Q is read from L2 by
every p-block of the thread; inside a tile a 4 × 2 register block (4 values of p,
2 values of q) keeps 8 partial sums over r in vector registers, reading each loaded
P_pr twice and each Q_qr four times. Left-over rows (M mod 4, Nq mod 2) use 1 × 2 and
1 × 1 blocks.

Build: ``njit(parallel=True, fastmath=FAST_FLAGS, cache=True)`` (the fast build's flags:
reassociation lets the sum over r vectorize; no ``nnan``/``ninf``). The sum over r is
therefore reassociated: results equal the exact loops forms to rounding, tested within
rtol 1e-4 (float32) and 1e-12 (float64) relative to the largest |C| (tests/test_tiled.py).
Each call is free of allocation when the caller passes the work buffers
(:func:`forward_work`, :func:`input_grad_work`).
"""
import numba
import numpy as np
from numba import prange

from indexnet._jit import FAST_FLAGS
from indexnet.kernels.activations import IDENTITY, sigma

_FLAGS = set(FAST_FLAGS)
#: bytes of Q kept hot per cache tile (L2 is 512 KiB per core here)
Q_TILE_BYTES = 256 * 1024


def tiled(fn):
    """Compile a tiled kernel: parallel, fast build's fastmath flags, cached."""
    return numba.njit(parallel=True, fastmath=_FLAGS, cache=True)(fn)


def tiled_serial(fn):
    """Compile a serial helper of the tiled kernels (inlined by LLVM)."""
    return numba.njit(fastmath=_FLAGS, cache=True)(fn)


def q_tile(K: int, itemsize: int) -> int:
    """Rows of Q per cache tile: about :data:`Q_TILE_BYTES` of Q, even, at least 2."""
    return max(2, (Q_TILE_BYTES // max(1, K * itemsize)) & ~1)


# ----------------------------------------------------------------- register blocks
@tiled_serial
def _block42(p0, p1, p2, p3, q0, q1):
    """The 4 × 2 register block: Σ_r p_a[r] q_b[r] for a < 4, b < 2 (8 partial sums)."""
    z = p0.dtype.type(0)
    c00 = z; c01 = z; c10 = z; c11 = z; c20 = z; c21 = z; c30 = z; c31 = z  # noqa: E702
    for r in range(p0.shape[0]):
        y0, y1 = q0[r], q1[r]
        x0, x1, x2, x3 = p0[r], p1[r], p2[r], p3[r]
        c00, c01, c10, c11 = c00 + x0 * y0, c01 + x0 * y1, c10 + x1 * y0, c11 + x1 * y1
        c20, c21, c30, c31 = c20 + x2 * y0, c21 + x2 * y1, c30 + x3 * y0, c31 + x3 * y1
    return c00, c01, c10, c11, c20, c21, c30, c31


@tiled_serial
def _block12(p0, q0, q1):
    """The 1 × 2 block: Σ_r p[r] q_b[r] for b < 2."""
    c0 = p0.dtype.type(0)
    c1 = c0
    for r in range(p0.shape[0]):
        x = p0[r]
        c0 += x * q0[r]
        c1 += x * q1[r]
    return c0, c1


@tiled_serial
def _dot(p0, q0):
    """The 1 × 1 block: Σ_r p[r] q[r]."""
    c = p0.dtype.type(0)
    for r in range(p0.shape[0]):
        c += p0[r] * q0[r]
    return c


@tiled_serial
def _rows(M, T, t):
    """Rows [lo, hi) of thread t of T: 4-row blocks split evenly, the M mod 4 rest to the last."""
    nb = M // 4
    lo = 4 * (nb * t // T)
    hi = 4 * (nb * (t + 1) // T)
    if t == T - 1:
        hi = M
    return lo, hi


@tiled_serial
def _gemm_nt_rows(P, Q, C, bias, kind, alpha, lo, hi, qt):
    """C_pq = σ(Σ_r P_pr Q_qr + bias_p) for p in [lo, hi); no bias when ``bias`` is empty."""
    Nq = Q.shape[0]
    has_bias = bias.shape[0] > 0
    z = C.dtype.type(0)
    for qa in range(0, Nq, qt):
        qb = min(Nq, qa + qt)
        q_even = qa + ((qb - qa) // 2) * 2
        p = lo
        while p + 4 <= hi:
            b0 = z
            b1 = z
            b2 = z
            b3 = z
            if has_bias:
                b0 = bias[p]
                b1 = bias[p + 1]
                b2 = bias[p + 2]
                b3 = bias[p + 3]
            r0 = P[p]
            r1 = P[p + 1]
            r2 = P[p + 2]
            r3 = P[p + 3]
            for q in range(qa, q_even, 2):
                c = _block42(r0, r1, r2, r3, Q[q], Q[q + 1])
                C[p, q] = sigma(c[0] + b0, kind, alpha)
                C[p, q + 1] = sigma(c[1] + b0, kind, alpha)
                C[p + 1, q] = sigma(c[2] + b1, kind, alpha)
                C[p + 1, q + 1] = sigma(c[3] + b1, kind, alpha)
                C[p + 2, q] = sigma(c[4] + b2, kind, alpha)
                C[p + 2, q + 1] = sigma(c[5] + b2, kind, alpha)
                C[p + 3, q] = sigma(c[6] + b3, kind, alpha)
                C[p + 3, q + 1] = sigma(c[7] + b3, kind, alpha)
            if q_even < qb:
                C[p, q_even] = sigma(_dot(r0, Q[q_even]) + b0, kind, alpha)
                C[p + 1, q_even] = sigma(_dot(r1, Q[q_even]) + b1, kind, alpha)
                C[p + 2, q_even] = sigma(_dot(r2, Q[q_even]) + b2, kind, alpha)
                C[p + 3, q_even] = sigma(_dot(r3, Q[q_even]) + b3, kind, alpha)
            p += 4
        while p < hi:
            b0 = bias[p] if has_bias else z
            r0 = P[p]
            for q in range(qa, q_even, 2):
                c = _block12(r0, Q[q], Q[q + 1])
                C[p, q] = sigma(c[0] + b0, kind, alpha)
                C[p, q + 1] = sigma(c[1] + b0, kind, alpha)
            if q_even < qb:
                C[p, q_even] = sigma(_dot(r0, Q[q_even]) + b0, kind, alpha)
            p += 1


@tiled
def gemm_nt(P, Q, C, bias, kind, alpha, qt, T):
    """C_pq = σ(Σ_r P_pr Q_qr + bias_p): the dot-form contraction every tiled dense sum uses.

    Tiles: thread t owns p-rows [lo_t, hi_t) (whole 4-row blocks); q runs in cache tiles
    of ``qt`` rows; inside a tile, 4 × 2 register blocks (p, p+1, p+2, p+3) × (q, q+1)
    sum over r in 8 vector accumulators. ``bias`` may be empty (no bias); σ is the
    elementwise activation ``kind`` (``IDENTITY`` stores the plain sum), applied as each
    block is stored, so bias and activation cost no extra pass. ``T`` is the
    number of row ranges (numba's thread count; 1 runs serially). Not an equation of its
    own: the public kernels below map their indices onto (p, q, r).
    """
    M = P.shape[0]
    if M < 8:
        T = 1
    for t in prange(T):
        lo, hi = _rows(M, T, t)
        _gemm_nt_rows(P, Q, C, bias, kind, alpha, lo, hi, qt)
    return C


@tiled
def transpose_into(src, dst):
    """dst_cr = src_rc in 32 × 32 cache blocks, ``prange`` over blocks of columns of src."""
    R, Cn = src.shape
    nbc = (Cn + 31) // 32
    for bc in prange(nbc):
        c0 = bc * 32
        c1 = min(Cn, c0 + 32)
        for r0 in range(0, R, 32):
            r1 = min(R, r0 + 32)
            for c in range(c0, c1):
                for r in range(r0, r1):
                    dst[c, r] = src[r, c]
    return dst


# ------------------------------------------------------------------- public kernels
_EMPTY = {}


def _no_bias(dtype):
    """An empty bias vector of ``dtype`` (gemm_nt then adds no bias); made once per dtype."""
    key = np.dtype(dtype).str
    if key not in _EMPTY:
        _EMPTY[key] = np.zeros(0, dtype=dtype)
    return _EMPTY[key]


def forward_work(W, A_prev):
    """The work buffer :func:`forward_tiled` packs Aᵗ into: shape (N, S_{l-1})."""
    return np.empty((A_prev.shape[1], A_prev.shape[0]), dtype=A_prev.dtype)


def input_grad_work(W, H):
    """The work buffers :func:`input_grad_tiled` packs Wᵗ and Hᵗ into."""
    return (np.empty((W.shape[1], W.shape[0]), dtype=W.dtype),
            np.empty((H.shape[1], H.shape[0]), dtype=H.dtype))


def forward_tiled(W, A_prev, b, Z, AT=None):
    """Z_in = Σ_j W_ij A_jn + b_i, register-blocked and tiled. derivations/dense.md#D1.4

    Tiles map to the sum's indices as p = i (rows of W), q = n (samples), r = j: Aᵗ is
    packed once per call into ``AT`` (N × S_{l-1}, see :func:`forward_work`) so that
    the sum over j is unit-stride in both W_i· and Aᵗ_n·; each 4 × 2 block computes
    Z_{i..i+3, n..n+1}, adding b_i at the store. Equal to ``dense.forward_loops`` to
    rounding (the sum over j is reassociated).
    """
    if AT is None:
        AT = forward_work(W, A_prev)
    transpose_into(A_prev, AT)
    gemm_nt(W, AT, Z, b, IDENTITY, 0.0, q_tile(W.shape[1], W.itemsize), numba.get_num_threads())
    return Z


def weight_grad_tiled(H, A_prev, dW):
    """∂J/∂W_ij = Σ_n H_in A_jn, register-blocked and tiled. derivations/dense.md#D2.5

    Tiles map as p = i (rows of H), q = j (rows of A_prev), r = n (samples): both
    operands are already unit-stride in n, so nothing is packed; each 4 × 2 block sums
    dW_{i..i+3, j..j+1} over n in 8 vector accumulators, and rows of A_prev are read in
    cache tiles of about 256 KiB.
    """
    gemm_nt(H, A_prev, dW, _no_bias(H.dtype), IDENTITY, 0.0, q_tile(H.shape[1], H.itemsize), numba.get_num_threads())
    return dW


def input_grad_tiled(W, H, Delta_prev, work=None):
    """Δ^(l-1)_jn = Σ_i W_ij H_in, register-blocked and tiled. derivations/dense.md#D2.25

    Tiles map as p = j (columns of W), q = n (samples), r = i (rows of layer l): Wᵗ and
    Hᵗ are packed into ``work`` (see :func:`input_grad_work`) so the sum over i is
    unit-stride; each 4 × 2 block computes Δ_{j..j+3, n..n+1}.
    """
    WT, HT = input_grad_work(W, H) if work is None else work
    transpose_into(W, WT)
    transpose_into(H, HT)
    gemm_nt(WT, HT, Delta_prev, _no_bias(H.dtype), IDENTITY, 0.0, q_tile(W.shape[0], W.itemsize), numba.get_num_threads())
    return Delta_prev
