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
import math

import numba
import numpy as np
from numba import prange

from indexnet._jit import FAST_FLAGS, renamed
from indexnet.kernels.activations import IDENTITY, TANH, sigma, sigma_prime

_FLAGS = set(FAST_FLAGS)
#: bytes of Q kept hot per cache tile (L2 is 512 KiB per core here)
Q_TILE_BYTES = 256 * 1024


def tiled(fn):
    """Compile a tiled kernel (the sums of derivations/dense.md D1.4, D2.5, D2.25): parallel, the fast build's fastmath flags, cached, and
    NumPy's error model (a float division by zero gives inf instead of a branch that
    raises, which would keep the loop from vectorizing)."""
    return numba.njit(parallel=True, fastmath=_FLAGS, cache=True, error_model="numpy")(fn)


def tiled_serial(fn):
    """Compile a serial helper of the tiled kernels of derivations/dense.md (same flags, no threads)."""
    return numba.njit(fastmath=_FLAGS, cache=True, error_model="numpy")(fn)


# ------------------------------------------------------------- a tanh that vectorizes
def inlined(fn):
    """Compile a scalar helper (e.g. σ of derivations/activations.md#A0) inlined into its callers at numba IR level, so the loops
    that call it can vectorize (LLVM does not inline across numba functions)."""
    return numba.njit(inline="always", fastmath=_FLAGS, cache=True, error_model="numpy")(fn)


@inlined
def _expm1_neg(y):
    """e^{-y} − 1 for 0 <= y <= 40 in float64 arithmetic, branch-free so loops vectorize.

    y = k ln 2 + r with |r| <= ln2/2 (ln 2 in two parts, fdlibm's split);
    e^{-y} − 1 = 2^{-k} expm1(−r) + (2^{-k} − 1), expm1 by its Taylor series to t^13
    (truncation < 1e-17 relative), 2^{-k} from the 6 bits of k.
    """
    ki = np.int32(y * 1.4426950408889634 + 0.5)  # y >= 0: truncation rounds
    k = np.float64(ki)
    t = -((y - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10)
    p = 1.0 / 6227020800.0
    p = p * t + 1.0 / 479001600.0
    p = p * t + 1.0 / 39916800.0
    p = p * t + 1.0 / 3628800.0
    p = p * t + 1.0 / 362880.0
    p = p * t + 1.0 / 40320.0
    p = p * t + 1.0 / 5040.0
    p = p * t + 1.0 / 720.0
    p = p * t + 1.0 / 120.0
    p = p * t + 1.0 / 24.0
    p = p * t + 1.0 / 6.0
    p = p * t + 0.5
    p = p * t + 1.0
    em1 = p * t
    s = np.float64(1.0)
    s *= 0.5 if ki & 1 else 1.0
    s *= 0.25 if ki & 2 else 1.0
    s *= 0.0625 if ki & 4 else 1.0
    s *= 0.00390625 if ki & 8 else 1.0
    s *= 1.52587890625e-05 if ki & 16 else 1.0
    s *= 2.3283064365386963e-10 if ki & 32 else 1.0
    return s * em1 + (s - 1.0)


@inlined
def tanh_vec(z):
    """tanh z = −sign(z) expm1(−2|z|) / (2 + expm1(−2|z|)), eq. A5 without a libm call.

    numba cannot use SVML here (llvmlite is not built with it), so ``math.tanh`` stays
    a scalar call that blocks vectorization; this form is plain arithmetic. Accuracy:
    within 4 ulp of ``numpy.tanh`` in float64 (tests/test_fastpath.py); |z| > 20 gives ±1.
    """
    y = min(2.0 * abs(np.float64(z)), 40.0)
    e = _expm1_neg(y)
    return math.copysign(-e / (2.0 + e), z)


# renamed copies (own cache entries: numba's cache key ignores compile flags, and the
# exact build's sigma must never load these fastmath builds)
_sigma_inline = inlined(renamed(sigma.py_func, "__tiled"))
#: σ'(z, a) of :mod:`indexnet.kernels.activations`, inlined so that the loops calling it vectorize
sigma_prime_fast = inlined(renamed(sigma_prime.py_func, "__tiled"))


@inlined
def sigma_fast(z, kind, alpha):
    """σ(z) (derivations/activations.md#A0) inlined, tanh by :func:`tanh_vec`."""
    if kind == TANH:
        return tanh_vec(z)
    return _sigma_inline(z, kind, alpha)


def q_tile(K: int, itemsize: int) -> int:
    """Rows of Q per cache tile of the sums of derivations/dense.md (D1.4, D2.5, D2.25): about :data:`Q_TILE_BYTES` of Q, even, at least 2."""
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
def activate(C, p0, p1, qa, qb, kind, alpha):
    """C_pq ← σ(C_pq) (derivations/activations.md#A0) on the block just stored (still in L1), one vectorizable sweep per row."""
    if kind == IDENTITY:
        return
    for p in range(p0, p1):
        row = C[p, qa:qb]
        if kind == TANH:  # a loop of its own, so that it vectorizes
            for q in range(row.shape[0]):
                row[q] = tanh_vec(row[q])
        else:
            for q in range(row.shape[0]):
                row[q] = _sigma_inline(row[q], kind, alpha)


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
                C[p, q] = c[0] + b0
                C[p, q + 1] = c[1] + b0
                C[p + 1, q] = c[2] + b1
                C[p + 1, q + 1] = c[3] + b1
                C[p + 2, q] = c[4] + b2
                C[p + 2, q + 1] = c[5] + b2
                C[p + 3, q] = c[6] + b3
                C[p + 3, q + 1] = c[7] + b3
            if q_even < qb:
                C[p, q_even] = _dot(r0, Q[q_even]) + b0
                C[p + 1, q_even] = _dot(r1, Q[q_even]) + b1
                C[p + 2, q_even] = _dot(r2, Q[q_even]) + b2
                C[p + 3, q_even] = _dot(r3, Q[q_even]) + b3
            activate(C, p, p + 4, qa, qb, kind, alpha)
            p += 4
        while p < hi:
            b0 = bias[p] if has_bias else z
            r0 = P[p]
            for q in range(qa, q_even, 2):
                c = _block12(r0, Q[q], Q[q + 1])
                C[p, q] = c[0] + b0
                C[p, q + 1] = c[1] + b0
            if q_even < qb:
                C[p, q_even] = _dot(r0, Q[q_even]) + b0
            activate(C, p, p + 1, qa, qb, kind, alpha)
            p += 1


@tiled
def gemm_nt(P, Q, C, bias, kind, alpha, qt, T):
    """C_pq = σ(Σ_r P_pr Q_qr + bias_p): the dot form of derivations/dense.md D1.4, D2.5, D2.25.

    Tiles: thread t owns p-rows [lo_t, hi_t) (whole 4-row blocks); q runs in cache tiles
    of ``qt`` rows; inside a tile, 4 × 2 register blocks (p, p+1, p+2, p+3) × (q, q+1)
    sum over r in 8 vector accumulators. ``bias`` may be empty (no bias); σ is the
    elementwise activation ``kind`` (``IDENTITY`` stores the plain sum), applied to each
    block of rows right after it is stored, while it is in L1, so bias and activation
    cost no extra pass over memory. ``T`` is the
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


@tiled_serial
def _axpy_rows(PT, QT, C, i, m):
    """C_{i+a, q} = Σ_r PT_{r, i+a} QT_{r, q} for a < m <= 4: rows of C updated by unit-stride axpys over q.

    Register block: 4 values of r at a time for 4 rows of C at once (16 scalars of PT in
    registers, each loaded QT_rq used 4 times), so each load and store of C carries 4
    multiply-adds. Rows past M (m < 4) go one at a time.
    """
    R = QT.shape[0]
    z = C.dtype.type(0)
    for a in range(m):
        C[i + a, :] = z
    r = 0
    while r < R:
        k = min(4, R - r)  # rows of QT past R are replaced by row r with weight 0
        q0 = QT[r]
        q1 = QT[r + 1] if k > 1 else q0
        q2 = QT[r + 2] if k > 2 else q0
        q3 = QT[r + 3] if k > 3 else q0
        if m == 4:
            w = PT[r:r + k, i:i + 4]
            a0, a1, a2, a3 = w[0, 0], w[0, 1], w[0, 2], w[0, 3]
            b0, b1, b2, b3 = (w[1, 0], w[1, 1], w[1, 2], w[1, 3]) if k > 1 else (z, z, z, z)
            c0, c1, c2, c3 = (w[2, 0], w[2, 1], w[2, 2], w[2, 3]) if k > 2 else (z, z, z, z)
            d0, d1, d2, d3 = (w[3, 0], w[3, 1], w[3, 2], w[3, 3]) if k > 3 else (z, z, z, z)
            e0, e1, e2, e3 = C[i], C[i + 1], C[i + 2], C[i + 3]
            for q in range(e0.shape[0]):
                x0, x1, x2, x3 = q0[q], q1[q], q2[q], q3[q]
                e0[q] += a0 * x0 + b0 * x1 + c0 * x2 + d0 * x3
                e1[q] += a1 * x0 + b1 * x1 + c1 * x2 + d1 * x3
                e2[q] += a2 * x0 + b2 * x1 + c2 * x2 + d2 * x3
                e3[q] += a3 * x0 + b3 * x1 + c3 * x2 + d3 * x3
        else:
            for a in range(m):
                p = PT[r:r + k, i + a]
                w0 = p[0]
                w1 = p[1] if k > 1 else z
                w2 = p[2] if k > 2 else z
                w3 = p[3] if k > 3 else z
                c = C[i + a]
                for q in range(c.shape[0]):
                    c[q] += w0 * q0[q] + w1 * q1[q] + w2 * q2[q] + w3 * q3[q]
        r += 4


@tiled
def gemm_tn(PT, QT, C, T):
    """C_pq = Σ_r PT_rp QT_rq, the axpy form of derivations/dense.md#D2.5: for a short r (a small batch), where the
    dot form's vector remainders and horizontal sums would dominate.

    Tiles: ``prange`` over blocks of 4 rows of C (p, ..., p+3); inside, 4 values of r at
    a time update those rows with unit-stride sweeps over q (see :func:`_axpy_rows`).
    """
    M = C.shape[0]
    nb = (M + 3) // 4
    for b in prange(nb):
        i = 4 * b
        _axpy_rows(PT, QT, C, i, min(4, M - i))
    return C


@tiled
def transpose_into(src, dst):
    """dst_cr = src_rc (the transposes of derivations/dense.md D2.5, D2.25) in 32 × 32 cache blocks, ``prange`` over blocks of columns of src."""
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
    """The work buffer :func:`forward_tiled` (derivations/dense.md#D1.4) packs Aᵗ into: shape (N, S_{l-1})."""
    return np.empty((A_prev.shape[1], A_prev.shape[0]), dtype=A_prev.dtype)


def weight_grad_work(H, A_prev):
    """The work buffers :func:`weight_grad_tiled` (derivations/dense.md#D2.5) packs Hᵗ and Aᵗ into (short batches)."""
    return (np.empty((H.shape[1], H.shape[0]), dtype=H.dtype),
            np.empty((A_prev.shape[1], A_prev.shape[0]), dtype=A_prev.dtype))


def input_grad_work(W, H):
    """The work buffers :func:`input_grad_tiled` (derivations/dense.md#D2.25) packs Wᵗ and Hᵗ into."""
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


#: batches shorter than this take the axpy form in :func:`weight_grad_tiled`
SHORT_BATCH = 256


def weight_grad_tiled(H, A_prev, dW, work=None):
    """∂J/∂W_ij = Σ_n H_in A_jn, register-blocked and tiled. derivations/dense.md#D2.5

    Tiles map as p = i (rows of H), q = j (rows of A_prev), r = n (samples). For
    N >= :data:`SHORT_BATCH` both operands are already unit-stride in n, nothing is
    packed, and each 4 × 2 block sums dW_{i..i+3, j..j+1} over n in 8 vector
    accumulators, rows of A_prev read in cache tiles of about 256 KiB. For a shorter
    batch Hᵗ and Aᵗ are packed into ``work`` (:func:`weight_grad_work`) and
    :func:`gemm_tn` adds 4 samples n at a time into rows dW_{i..i+3, ·}, unit-stride in j.
    """
    if H.shape[1] < SHORT_BATCH:
        HT, AT = weight_grad_work(H, A_prev) if work is None else work
        transpose_into(H, HT)
        transpose_into(A_prev, AT)
        gemm_tn(HT, AT, dW, numba.get_num_threads())
        return dW
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
