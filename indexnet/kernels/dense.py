"""Dense layers: forward pass, output "error", weight/bias/input gradients.

Beside ``derivations/dense.md``. Shapes (samples last)::

    A_prev  (S_{l-1}, N)   activations of layer l-1 (A^(0) = X)
    W       (S_l, S_{l-1}) weights
    b       (S_l,)         biases
    Z, A    (S_l, N)       pre-activation and activation of layer l
    Delta   (S_l, N)       Δ^(l) = ∂J/∂A^(l)
    dsig    (S_l, N)       ∂σ_l/∂Z^(l), elementwise activations
    H       (S_l, N)       H^(l) = Δ^(l) ⊙ ∂σ_l/∂Z^(l)

Index names follow the derivation: i, k rows of layer l; j rows of layer l-1; n, n'
samples. The loops forms are bit-identical to the literal forms in float64 (the deltas
only add exact zeros and the surviving terms are summed in the same order).
"""
import numpy as np
from numba import prange

from indexnet._jit import any_layout, exact, fastform, fastinline, fastserial, literal, local_row
from indexnet.kernels._delta import kron
from indexnet.kernels.activations import activate_row, hadamard_row, row_sum


# ----------------------------------------------------------------------------- forward
@literal
def forward_literal(W, A_prev, b, Z):
    """Z_in = Σ_j W_ij A_jn + b_i, summed in the written order i, n, j. derivations/dense.md#D1.4"""
    S, S_prev = W.shape
    N = A_prev.shape[1]
    for i in range(S):
        for n in range(N):
            acc = Z.dtype.type(0)
            for j in range(S_prev):
                acc += W[i, j] * A_prev[j, n]
            Z[i, n] = acc + b[i]
    return Z


@exact
def forward_loops(W, A_prev, b, Z):
    """Z_in = Σ_j W_ij A_jn + b_i, ``prange`` over rows i. derivations/dense.md#D1.4

    Loop order i, j, n instead of the written i, n, j: the innermost loop over n is a
    unit-stride axpy (Z[i, :] += W_ij A[j, :]) that vectorizes without fastmath, and
    each Z_in still receives its terms in the order j = 0, 1, ..., so the result equals
    :func:`forward_literal` bit for bit.
    """
    S, S_prev = W.shape
    N = A_prev.shape[1]
    for i in prange(S):
        for n in range(N):
            Z[i, n] = 0
        for j in range(S_prev):
            w = W[i, j]
            for n in range(N):
                Z[i, n] += w * A_prev[j, n]
        for n in range(N):
            Z[i, n] += b[i]
    return Z


def forward_numpy(W, A_prev, b, Z):
    """Z = W A_prev + b J_N^t on BLAS. derivations/dense.md#D1.4"""
    np.matmul(W, A_prev, out=Z)
    Z += b[:, None]
    return Z


# ------------------------------------------------------------------------ H = Δ ⊙ σ'
@literal
def hadamard_literal(Delta, dsig, H):
    """H_in = Σ_k Δ_kn ∂A_kn/∂Z_in with ∂A_kn/∂Z_in = σ'(Z_kn) δ_ki. derivations/dense.md#D2.13

    The Jacobian of an elementwise activation is diagonal; this form keeps the diagonal
    as a delta over k and sums it, as eq. D2.13 does before collapsing.
    """
    S, N = Delta.shape
    one = H.dtype.type(1)
    for i in range(S):
        for n in range(N):
            acc = H.dtype.type(0)
            for k in range(S):
                acc += Delta[k, n] * dsig[k, n] * kron(k, i, one)
            H[i, n] = acc
    return H


@exact
def hadamard_loops(Delta, dsig, H):
    """H_in = Δ_in σ'(Z_in), ``prange`` over rows i. derivations/dense.md#D2.13"""
    S, N = Delta.shape
    for i in prange(S):
        for n in range(N):
            H[i, n] = Delta[i, n] * dsig[i, n]
    return H


def hadamard_numpy(Delta, dsig, H):
    """H = Δ ⊙ ∂σ/∂Z. derivations/dense.md#D2.13"""
    np.multiply(Delta, dsig, out=H)
    return H


# ---------------------------------------------------------------------- ∂J/∂W = H Aᵗ
@literal
def weight_grad_literal(Delta, dsig, A_prev, dW):
    """∂J/∂W_ij = Σ_k Σ_n Δ_kn σ'(Z_kn) δ_ik A_jn (eq. D2.5, left). derivations/dense.md#D2.5

    Takes Δ and σ' rather than H, exactly as the unreduced sum is written.
    """
    S, S_prev = dW.shape
    N = A_prev.shape[1]
    one = dW.dtype.type(1)
    for i in range(S):
        for j in range(S_prev):
            acc = dW.dtype.type(0)
            for k in range(S):
                for n in range(N):
                    acc += Delta[k, n] * dsig[k, n] * kron(i, k, one) * A_prev[j, n]
            dW[i, j] = acc
    return dW


@exact
def weight_grad_loops(H, A_prev, dW):
    """∂J/∂W_ij = Σ_n H_in A_jn, ``prange`` over rows i. derivations/dense.md#D2.5

    The reduction over n runs sequentially inside one (i, j) element, so the result is
    independent of the thread count. Without fastmath this dot product does not
    vectorize; the trainer's fast build (``indexnet._jit.fast``) lets it.
    """
    S, S_prev = dW.shape
    N = A_prev.shape[1]
    for i in prange(S):
        for j in range(S_prev):
            acc = dW.dtype.type(0)
            for n in range(N):
                acc += H[i, n] * A_prev[j, n]
            dW[i, j] = acc
    return dW


def weight_grad_numpy(H, A_prev, dW):
    """∂J/∂W = H (A_prev)ᵗ on BLAS. derivations/dense.md#D2.5"""
    np.matmul(H, A_prev.T, out=dW)
    return dW


# --------------------------------------------------------------------- ∂J/∂b = H J_N
@literal
def bias_grad_literal(Delta, dsig, db):
    """∂J/∂b_i = Σ_k Σ_n Δ_kn σ'(Z_kn) δ_ik (eq. D2.10, left). derivations/dense.md#D2.10"""
    S, N = Delta.shape
    one = db.dtype.type(1)
    for i in range(S):
        acc = db.dtype.type(0)
        for k in range(S):
            for n in range(N):
                acc += Delta[k, n] * dsig[k, n] * kron(i, k, one)
        db[i] = acc
    return db


@exact
def bias_grad_loops(H, db):
    """∂J/∂b_i = Σ_n H_in, ``prange`` over i. derivations/dense.md#D2.10"""
    S, N = H.shape
    for i in prange(S):
        acc = db.dtype.type(0)
        for n in range(N):
            acc += H[i, n]
        db[i] = acc
    return db


def bias_grad_numpy(H, db):
    """∂J/∂b = H J_N. derivations/dense.md#D2.10"""
    np.sum(H, axis=1, out=db)
    return db


# --------------------------------------------------------- Δ^(l-1) = (W^(l))ᵗ H^(l)
@literal
def input_grad_literal(W, H, Delta_prev):
    """Δ^(l-1)_{k'n'} = Σ_k Σ_n H_kn W_kk' δ_nn' (eq. D2.25). derivations/dense.md#D2.25"""
    S, S_prev = W.shape
    N = H.shape[1]
    one = Delta_prev.dtype.type(1)
    for kp in range(S_prev):
        for n_p in range(N):
            acc = Delta_prev.dtype.type(0)
            for k in range(S):
                for n in range(N):
                    acc += H[k, n] * W[k, kp] * kron(n, n_p, one)
            Delta_prev[kp, n_p] = acc
    return Delta_prev


@exact
def input_grad_loops(W, H, Delta_prev):
    """Δ^(l-1)_jn = Σ_i W_ij H_in, ``prange`` over rows j. derivations/dense.md#D2.25

    Loop order j, i, n: the innermost loop over n is a unit-stride axpy
    (Δ[j, :] += W_ij H[i, :]) that vectorizes without fastmath; each element still sums
    i = 0, 1, ... in order, bit-identical to :func:`input_grad_literal`.
    """
    S, S_prev = W.shape
    N = H.shape[1]
    for j in prange(S_prev):
        for n in range(N):
            Delta_prev[j, n] = 0
        for i in range(S):
            w = W[i, j]
            for n in range(N):
                Delta_prev[j, n] += H[i, n] * w
    return Delta_prev


def input_grad_numpy(W, H, Delta_prev):
    """Δ^(l-1) = (W^(l))ᵗ H^(l) on BLAS. derivations/dense.md#D2.25"""
    np.matmul(W.T, H, out=Delta_prev)
    return Delta_prev


# =========================================================================== fast forms
# The trainer's forms: the same sums, register-blocked, compiled with the fast build's
# fastmath flags (the sums are reassociated, so results equal the exact loops forms to
# rounding; tests/test_fast_forms.py bounds the difference by rtol · Σ|terms|). Two
# private blocking helpers carry the register blocks; each fast form's body names its
# sum's indices and calls them.
@fastinline
def _fill(c, v):
    """c_n = v along one row (a plain loop: a slice assignment costs about 6 ns of set-up per row)."""
    for n in range(c.shape[0]):
        c[n] = v


@fastserial
def _axpy_rows(P, Q, r0, m, C, scale):
    """C_{r0+a, n} += scale · Σ_k P_{r0+a, k} Q_{kn} for a < m <= 4: the axpy blocking of D2.25 (and of D2.5, D2.6 for short batches).

    Register block: 4 rows of C × 4 values of k at a time (16 scalars of P in registers);
    each pass over n (unit-stride, vectorized) loads 4 rows of Q and the 4 rows of C
    once and does 16 multiply-adds per element. Rows past m repeat row r0 with their
    stores skipped; values of k past K repeat the last with weight 0. Small-size variant:
    for K < 4 (all of k in one padded block) one row and one k at a time, as plain
    sweeps over n (measured 6x faster for a 16 × 1 forward at N = 32).
    """
    K = Q.shape[0]
    if K < 4:  # short sum: no padded values of k, one sweep over n per (row, k)
        for a in range(m):
            c = C[r0 + a]
            for k in range(K):
                w = scale * P[r0 + a, k]
                q = Q[k]
                for n in range(c.shape[0]):
                    c[n] += w * q[n]
        return
    z = C.dtype.type(0)
    i1, i2, i3 = r0 + min(1, m - 1), r0 + min(2, m - 1), r0 + min(3, m - 1)
    c0, c1, c2, c3 = C[r0], C[i1], C[i2], C[i3]
    for k in range(0, K, 4):
        kk = min(4, K - k)
        q0 = Q[k]
        q1 = Q[k + min(1, kk - 1)]
        q2 = Q[k + min(2, kk - 1)]
        q3 = Q[k + min(3, kk - 1)]
        k1, k2, k3 = k + min(1, kk - 1), k + min(2, kk - 1), k + min(3, kk - 1)
        w00, w01, w02, w03 = scale * P[r0, k], scale * P[r0, k1], scale * P[r0, k2], scale * P[r0, k3]
        w10, w11, w12, w13 = scale * P[i1, k], scale * P[i1, k1], scale * P[i1, k2], scale * P[i1, k3]
        w20, w21, w22, w23 = scale * P[i2, k], scale * P[i2, k1], scale * P[i2, k2], scale * P[i2, k3]
        w30, w31, w32, w33 = scale * P[i3, k], scale * P[i3, k1], scale * P[i3, k2], scale * P[i3, k3]
        if kk < 4:  # weight 0 for the repeated values of k
            w03, w13, w23, w33 = z, z, z, z
            if kk < 3:
                w02, w12, w22, w32 = z, z, z, z
            if kk < 2:
                w01, w11, w21, w31 = z, z, z, z
        if m == 4:
            for n in range(c0.shape[0]):
                x0, x1, x2, x3 = q0[n], q1[n], q2[n], q3[n]
                c0[n] += (w00 * x0 + w01 * x1) + (w02 * x2 + w03 * x3)
                c1[n] += (w10 * x0 + w11 * x1) + (w12 * x2 + w13 * x3)
                c2[n] += (w20 * x0 + w21 * x1) + (w22 * x2 + w23 * x3)
                c3[n] += (w30 * x0 + w31 * x1) + (w32 * x2 + w33 * x3)
        else:
            for a in range(m):
                c = C[r0 + a]
                v0, v1, v2, v3 = scale * P[r0 + a, k], w01, w02, w03
                if kk > 1:
                    v1 = scale * P[r0 + a, k + 1]
                if kk > 2:
                    v2 = scale * P[r0 + a, k + 2]
                if kk > 3:
                    v3 = scale * P[r0 + a, k + 3]
                for n in range(c.shape[0]):
                    c[n] += (v0 * q0[n] + v1 * q1[n]) + (v2 * q2[n] + v3 * q3[n])


@fastserial
def _dots42(h0, h1, h2, h3, a0, a1):
    """The 4 × 2 register block of D2.5: Σ_n h_u[n] a_v[n] for u < 4, v < 2 (8 partial sums
    over n, each a vector accumulator under fastmath)."""
    z = h0.dtype.type(0)
    c00 = z; c01 = z; c10 = z; c11 = z; c20 = z; c21 = z; c30 = z; c31 = z  # noqa: E702
    for n in range(h0.shape[0]):
        y0, y1 = a0[n], a1[n]
        x0, x1, x2, x3 = h0[n], h1[n], h2[n], h3[n]
        c00, c01, c10, c11 = c00 + x0 * y0, c01 + x0 * y1, c10 + x1 * y0, c11 + x1 * y1
        c20, c21, c30, c31 = c20 + x2 * y0, c21 + x2 * y1, c30 + x3 * y0, c31 + x3 * y1
    return c00, c01, c10, c11, c20, c21, c30, c31


@fastserial
def _weight_sums(H, A_prev, i, m, j, k):
    """Σ_n H_in A_jn for the rows i..i+m−1 (m <= 4) and j..j+k−1 (k <= 2) of D2.5, as the
    8 values of :func:`_dots42` (rows past m or k repeat the last; their sums are unused)."""
    return _dots42(H[i], H[i + min(1, m - 1)], H[i + min(2, m - 1)], H[i + min(3, m - 1)],
                   A_prev[j], A_prev[j + min(1, k - 1)])


#: batches shorter than this take the axpy blocking in the weight-gradient fast forms
SHORT_BATCH = 256


@fastserial
def _transpose_block(A, AT, j0):
    """AT_nj = A_jn for the 16 rows j = j0..j0+15 (fewer at the end): the packing of the forward sum, of the
    short-batch weight gradient (derivations/dense.md#D2.5) and of the support forms'
    operands. For each n the 16 values AT_{n, j..j+15} are written as one contiguous run
    (a vector store fed by 16 strided loads), 3-8x faster than 32 × 32 cache blocks of
    scalar copies. Serial, so that a serial twin of its caller stays free of threads; the
    parallel forms call it inside their own ``prange`` over blocks of j, passing j0 = 16 × the
    block (a signed integer: the ``prange`` index itself is typed unsigned in the parallel
    loop and signed where the caller is typed, so passing it would compile this twice)."""
    R, C = A.shape
    if j0 + 16 <= R:
        for n in range(C):
            t = AT[n, j0:j0 + 16]
            for u in range(16):
                t[u] = A[j0 + u, n]
    else:
        for j in range(j0, R):
            for n in range(C):
                AT[n, j] = A[j, n]


@fastserial
def _forward_rows(W, AT, b, i, m, Z):
    """Rows i..i+m−1 (m <= 4) of D1.4 from the packed AT = A_prevᵗ: 4 × 2 blocks
    (i..i+3) × (n, n+1) of dot products over j (:func:`_dots42`), b_i added at the store."""
    N = Z.shape[1]
    i1, i2, i3 = i + min(1, m - 1), i + min(2, m - 1), i + min(3, m - 1)
    for n in range(0, N, 2):
        k = min(2, N - n)
        c = _dots42(W[i], W[i1], W[i2], W[i3], AT[n], AT[n + k - 1])
        for a in range(m):
            for v in range(k):
                Z[i + a, n + v] = c[2 * a + v] + b[i + a]


#: sums over j (inputs S_{l-1}) shorter than this take the axpy blocking in the forward
#: fast forms, and up to twice as long when the batch is at least as long (:func:`_axpy_forward`)
SHORT_SUM = 64


@fastinline
def _axpy_forward(S_prev, N):
    """True when the forward fast forms sum over j by axpy sweeps over n
    (:func:`_forward_rows_short`) rather than by packed dot products: S_{l-1} <
    :data:`SHORT_SUM`, or S_{l-1} <= 2 :data:`SHORT_SUM` and N >= S_{l-1}. The packed dot
    products pay a horizontal sum and a strided store per output Z_in, which a short sum
    does not amortize; the sweeps pay per 4 rows and 4 values of j, which a long batch does.
    Measured on one thread (float32; float64 alike): 800 × 64 at N = 200, 0.28 ms by
    sweeps against 0.61 packed (the digits layer); 800 × 128 at N = 200, 0.47 against
    0.72; packed wins for 800 × 128 at N = 32 (0.12 against 0.16), 800 × 64 at N = 8 and
    every longer sum (800 × 784 at N = 100, 1.0 against 1.7)."""
    return S_prev < SHORT_SUM or (S_prev <= 2 * SHORT_SUM and N >= S_prev)


def forward_packs(S_prev: int, N: int) -> bool:
    """True when the dense forward fast forms (D1.4, D1.5) pack A_prevᵗ (S_{l-1} × N) into
    their ``AT``: the sums over j are long (:func:`_axpy_forward` is False). A composer
    that keeps ``AT`` untouched until the same layer's weight gradient passes
    ``packed=True`` there, so that A_prevᵗ is packed once per step. Plain Python (the inlined
    rule's own source, ``py_func``): calling the compiled rule from Python would compile it
    in every process, about 0.5 s."""
    return not _axpy_forward.py_func(S_prev, N)


@fastserial
def _forward_rows_short(W, A_prev, b, i, m, Z):
    """Rows i..i+m−1 (m <= 4) of D1.4 for a short sum over j (:func:`_axpy_forward`):
    Z_i· = b_i, then 4 values of j at a time add W_ij A_j· to the rows Z_i· as unit-stride
    sweeps over n (:func:`_axpy_rows`). A_prev is read in place; the dot products of
    :func:`_forward_rows` would be too short to amortize their horizontal sums."""
    for a in range(m):
        _fill(Z[i + a], b[i + a])
    _axpy_rows(any_layout(W), A_prev, i, m, Z, Z.dtype.type(1))


@fastform
def forward_fast(W, A_prev, b, Z, AT):
    """Z_in = Σ_j W_ij A_jn + b_i, register-blocked. derivations/dense.md#D1.4

    Blocking: A_prev is packed into ``AT`` (N × S_{l-1}) so that the sum over j is
    unit-stride in W_i· and AT_n·; ``prange`` over blocks of 4 rows i; inside, 4 × 2
    blocks (i..i+3) × (n, n+1) keep 8 partial sums over j in vector registers
    (:func:`_dots42`), AT read from cache by every block. Small-size variant: for a
    short sum over j (:func:`_axpy_forward`: dot products too short to amortize their
    horizontal sums) nothing is packed and 4 values of j at a time add W_ij A_j· to 4
    rows Z_i· (:func:`_forward_rows_short`), the inner loop over n unit-stride. Performance
    contract: no allocation (``AT`` from the caller, unused by the short variant), inner
    loop unit-stride.
    """
    S = W.shape[0]
    if _axpy_forward(A_prev.shape[0], A_prev.shape[1]):  # short sums over j: axpy sweeps over n, no packing
        for blk in prange((S + 3) // 4):
            i = 4 * blk
            _forward_rows_short(W, A_prev, b, i, min(4, S - i), Z)
        return Z
    for bj in prange((A_prev.shape[0] + 15) // 16):  # pack A_prevᵗ
        _transpose_block(A_prev, AT, 16 * bj)
    for blk in prange((S + 3) // 4):
        i = 4 * blk
        _forward_rows(W, AT, b, i, min(4, S - i), Z)
    return Z


@fastform
def forward_activation_fast(W, A_prev, b, kind, alpha, Z, A, AT):
    """Z_in = Σ_j W_ij A_jn + b_i and A_in = σ(Z_in) in one pass. derivations/dense.md#D1.5

    D1.4 followed by A0 on each block of 4 rows i while it is still in L1 (so σ costs no
    extra pass over memory). Blocking and contract as :func:`forward_fast`; σ by
    ``activations.activate_row`` (vectorized, tanh by its polynomial form).
    """
    S = W.shape[0]
    short = _axpy_forward(A_prev.shape[0], A_prev.shape[1])  # short sums over j: axpy sweeps over n, no packing
    if not short:
        for bj in prange((A_prev.shape[0] + 15) // 16):  # pack A_prevᵗ
            _transpose_block(A_prev, AT, 16 * bj)
    for blk in prange((S + 3) // 4):
        i = 4 * blk
        m = min(4, S - i)
        if short:
            _forward_rows_short(W, A_prev, b, i, m, Z)
        else:
            _forward_rows(W, AT, b, i, m, Z)
        for a in range(m):
            activate_row(Z[i + a], A[i + a], kind, alpha)
    return A


@fastform
def input_grad_fast(W, H, Delta_prev):
    """Δ^(l-1)_jn = Σ_i W_ij H_in, register-blocked. derivations/dense.md#D2.25

    Blocking: ``prange`` over blocks of 4 rows j; inside, 4 values of i at a time add
    W_ij H_i· to the rows Δ_j· as unit-stride sweeps over n (:func:`_axpy_rows` on Wᵗ, a
    view). Performance contract: no allocation, no packing, inner loop over n unit-stride.
    """
    S_prev = W.shape[1]
    WT = W.T
    for blk in prange((S_prev + 3) // 4):
        j = 4 * blk
        m = min(4, S_prev - j)
        for a in range(m):
            _fill(Delta_prev[j + a], 0)
        _axpy_rows(any_layout(WT), H, j, m, Delta_prev, Delta_prev.dtype.type(1))
    return Delta_prev


@fastserial
def _weight_rows(H, A_prev, AT, i, m, eta, out):
    """Rows i..i+m−1 (m <= 4) of D2.5 (eta = 0: out_ij = Σ_n H_in A_jn) or of D2.6
    (out_ij −= η Σ_n H_in A_jn). For N >= :data:`SHORT_BATCH`, 4 × 2 blocks of dot
    products over n (:func:`_weight_sums`); for shorter batches, whose dot products
    are too short to amortize their horizontal sums, the axpy blocking over the packed
    AT = A_prevᵗ: 4 values of n at a time add H_in AT_n· to the rows out_i·."""
    S_prev = out.shape[1]
    N = H.shape[1]
    if N < SHORT_BATCH:
        if eta == 0:
            for a in range(m):
                _fill(out[i + a], 0)
            _axpy_rows(any_layout(H), AT, i, m, out, out.dtype.type(1))
        else:
            _axpy_rows(any_layout(H), AT, i, m, out, out.dtype.type(-eta))
        return
    for j in range(0, S_prev, 2):
        k = min(2, S_prev - j)
        c = _weight_sums(H, A_prev, i, m, j, k)
        for a in range(m):
            for v in range(k):
                if eta == 0:
                    out[i + a, j + v] = c[2 * a + v]
                else:
                    out[i + a, j + v] -= eta * c[2 * a + v]


#: weight matrices with at most this many entries take one plain dot product over n per
#: entry in the weight-gradient fast forms (measured: below about 32 × 32 the register
#: blocks' set-up, packing included, costs more than it saves; 16 × 16 at N = 32 is 2.4x faster)
SMALL_WEIGHTS = 1024


@fastserial
def _weight_row_dots(H, A_prev, i, eta, out):
    """Row i of D2.5 (eta = 0: out_ij = Σ_n H_in A_jn) or of D2.6 (out_ij −= η Σ_n H_in A_jn)
    as one dot product over n per j, unblocked (the sum over n vectorized): the small-size
    variant of the weight-gradient fast forms, for matrices of at most
    :data:`SMALL_WEIGHTS` entries."""
    h = H[i]
    for j in range(out.shape[1]):
        a = A_prev[j]
        acc = out.dtype.type(0)
        for n in range(h.shape[0]):
            acc += h[n] * a[n]
        if eta == 0:
            out[i, j] = acc
        else:
            out[i, j] -= eta * acc


@fastform
def weight_grad_fast(H, A_prev, dW, AT, packed=False):
    """∂J/∂W_ij = Σ_n H_in A_jn, register-blocked. derivations/dense.md#D2.5

    Blocking: ``prange`` over blocks of 4 rows i. For N >= :data:`SHORT_BATCH`, 4 × 2
    blocks (i..i+3) × (j, j+1) keep 8 partial sums over n in vector registers
    (:func:`_dots42`), the inner loop over n unit-stride in H and A. For a shorter batch
    A_prev is packed into ``AT`` (N × S_{l-1}) and 4 values of n at a time add
    H_in AT_n· to 4 rows of ∂J/∂W, the inner loop over j unit-stride
    (:func:`_weight_rows`). Small-size variant: a matrix of at most :data:`SMALL_WEIGHTS`
    entries takes one plain dot product over n per entry (:func:`_weight_row_dots`), no
    packing. ``packed``: ``AT`` already holds A_prevᵗ (the same step's forward packed it,
    :func:`forward_packs`) and is not packed again. Performance contract: no allocation
    (``AT`` from the caller).
    """
    S = dW.shape[0]
    if dW.size <= SMALL_WEIGHTS:  # small matrix: one dot product over n per entry
        for i in prange(S):
            _weight_row_dots(H, A_prev, np.int64(i), dW.dtype.type(0), dW)
        return dW
    if H.shape[1] < SHORT_BATCH and not packed:
        for bj in prange((A_prev.shape[0] + 15) // 16):  # pack A_prevᵗ
            _transpose_block(A_prev, AT, 16 * bj)
    for blk in prange((S + 3) // 4):
        i = 4 * blk
        _weight_rows(H, A_prev, AT, i, min(4, S - i), dW.dtype.type(0), dW)
    return dW


@fastform
def weight_grad_sgd_fast(H, A_prev, eta, W, AT, packed=False):
    """W_ij ← W_ij − η Σ_n H_in A_jn: D2.5 with the SGD step O2 folded into its store. derivations/dense.md#D2.6

    Blocking, ``packed`` and contract as :func:`weight_grad_fast`; the sum is subtracted
    from W where D2.5 would store it (short batches: added with weight −η by the axpy
    sweeps), so ∂J/∂W is never written.
    """
    S = W.shape[0]
    if W.size <= SMALL_WEIGHTS:  # small matrix: one dot product over n per entry
        for i in prange(S):
            _weight_row_dots(H, A_prev, np.int64(i), W.dtype.type(eta), W)
        return W
    if H.shape[1] < SHORT_BATCH and not packed:
        for bj in prange((A_prev.shape[0] + 15) // 16):  # pack A_prevᵗ
            _transpose_block(A_prev, AT, 16 * bj)
    for blk in prange((S + 3) // 4):
        i = 4 * blk
        _weight_rows(H, A_prev, AT, i, min(4, S - i), W.dtype.type(eta), W)
    return W




@fastform
def bias_grad_fast(H, db):
    """∂J/∂b_i = Σ_n H_in, ``prange`` over i, the sum over n vectorized. derivations/dense.md#D2.10

    Performance contract: no allocation, inner loop over n unit-stride.
    """
    for i in prange(H.shape[0]):
        db[i] = row_sum(H[i])
    return db


@fastform
def hadamard_fast(Delta, dsig, H):
    """H_in = Δ_in σ'(Z_in), ``prange`` over rows i. derivations/dense.md#D2.13"""
    S, N = Delta.shape
    for i in prange(S):
        for n in range(N):
            H[i, n] = Delta[i, n] * dsig[i, n]
    return H


@fastinline
def _hadamard_bias_row(Delta, Z, A, kind, alpha, H, i, eta, out):
    """Row i of D2.13 into H and its sum Σ_n H_in (``activations.hadamard_row``, the branch on
    σ's kind outside the loop over n), stored in out_i (eta = 0: D2.14's ∂J/∂b_i) or
    subtracted η times from it (D2.15's b_i)."""
    total = hadamard_row(Delta[i], Z[i], A[i], kind, alpha, H[i])
    if eta == 0:
        out[i] = total
    else:
        out[i] -= eta * total


@fastform
def hadamard_bias_grad_fast(Delta, Z, A, kind, alpha, H, db):
    """H_in = Δ_in σ'(Z_in) and ∂J/∂b_i = Σ_n H_in in one pass. derivations/dense.md#D2.14

    D2.13 (σ' from Z or A as ``activations.SIGMA_PRIME_FROM_FAST`` declares, both passed)
    followed by D2.10 on the row just written (:func:`_hadamard_bias_row`). ``prange`` over
    rows i; performance contract: no allocation, one pass over Δ, inner loop over n
    unit-stride and vectorized.
    """
    for i in prange(Delta.shape[0]):
        _hadamard_bias_row(Delta, Z, A, kind, alpha, H, i, db.dtype.type(0), db)
    return H


@fastform
def hadamard_bias_sgd_fast(Delta, Z, A, kind, alpha, eta, H, b):
    """H_in = Δ_in σ'(Z_in) and b_i ← b_i − η Σ_n H_in: D2.14 with the SGD step O2 folded into its bias store. derivations/dense.md#D2.15

    Sweeps and contract as :func:`hadamard_bias_grad_fast`; the sum is subtracted from b
    where D2.14 would store it, so ∂J/∂b is never written.
    """
    for i in prange(Delta.shape[0]):
        _hadamard_bias_row(Delta, Z, A, kind, alpha, H, i, b.dtype.type(eta), b)
    return H


# ------------------------------------------------------------- sums over the support of A
# The support forms (D1.6-D2.8) read the operand they sweep for each support entry
# transposed, so that one entry (j, n) reads a contiguous run of rows i: the forward reads
# W input-major (WT_ji = W_ij), the weight gradient reads H sample-major (HT_ni = H_in).
# :func:`_pack_transpose` packs them; the trainer keeps the first layer's W input-major
# between synchronisations (indexnet/train/fastpath.py).

#: blocks that the support forms' ``prange`` splits their samples or rows j into (enough
#: for an even share per thread when the supports differ in length)
SUPPORT_BLOCKS = 32
#: blocks of rows j that :func:`support_of` fills in parallel (rows of its ``starts``)
SUPPORT_FILL_BLOCKS = 8
#: bytes of the register block of D1.6's sums: the partial sums of this many bytes of
#: consecutive rows i (400 float32, 200 float64: 25 of the 32 AVX-512 registers) are held in
#: registers for a whole sum over a support (:func:`_support_sum`)
SUPPORT_FORWARD_BYTES = 1600
#: bytes of the register block of D2.7's and D2.8's sums (160 float32, 80 float64: 10
#: registers; narrower than the forward's, so that the rows of Hᵗ a block reads stay in L1/L2)
SUPPORT_GRAD_BYTES = 640


@fastform
def support_of(A, col_ptr, col_j, col_val, row_ptr, row_n, row_val, starts):
    """The support {(j, n) : A_jn ≠ 0} of A, listed by sample and by row, for the sums of derivations/dense.md#D1.6

    By sample n: j = ``col_j[col_ptr[n]:col_ptr[n+1]]`` with A_jn = ``col_val[...]``
    (increasing j); by row j: n = ``row_n[row_ptr[j]:row_ptr[j+1]]`` with values
    ``row_val`` (increasing n). Arrays of at least A.size entries (and N+1, S_prev+1
    pointers) come from the caller, with ``starts`` (blocks × N, int64; its rows set the
    number of blocks, :data:`SUPPORT_FILL_BLOCKS` in the trainer's workspace) the scratch
    of the fill; returns the number of nonzeros.

    Two ``prange`` passes over blocks of rows j, reading A in memory order: the first
    counts the nonzeros of each row j and, per block, of each sample n; between them the
    counts become the list pointers and each block's first fill position in every
    sample's list (after the earlier blocks' entries, so each list stays in increasing
    j); the second writes each row's list branch-free (every value is written, the
    position advances past nonzeros only; a zero's write goes to the buffers' last
    entry, which no list reaches when A has a zero) and then the row's entries into
    their samples' lists.
    """
    S_prev, N = A.shape
    nb = max(1, min(starts.shape[0], S_prev))
    for blk in prange(nb):  # count: row_ptr[j+1] = nonzeros of row j, starts[blk, n] = of sample n in the block
        c = starts[blk]
        for n in range(N):
            c[n] = 0
        for j in range(blk * S_prev // nb, (blk + 1) * S_prev // nb):
            a = A[j]
            k = 0
            for n in range(N):
                nz = 1 if a[n] != 0 else 0
                c[n] += nz
                k += nz
            row_ptr[j + 1] = k
    row_ptr[0] = 0
    for j in range(S_prev):
        row_ptr[j + 1] += row_ptr[j]
    col_ptr[0] = 0
    for n in range(N):  # each block's first position in sample n's list, after the earlier blocks' entries
        t = col_ptr[n]
        for blk in range(nb):
            c = starts[blk, n]
            starts[blk, n] = t
            t += c
        col_ptr[n + 1] = t
    spare = row_n.shape[0] - 1  # past every list when A has a zero (the only case a zero is written)
    for blk in prange(nb):  # fill: each row's list, then its entries into the sample lists
        pos = starts[blk]
        for j in range(blk * S_prev // nb, (blk + 1) * S_prev // nb):
            a = A[j]
            k = row_ptr[j]
            for n in range(N):
                v = a[n]
                at = k if v != 0 else spare
                row_n[at] = n
                row_val[at] = v
                k += 1 if v != 0 else 0
            for t in range(row_ptr[j], k):
                n = row_n[t]
                p = pos[n]
                col_j[p] = j
                col_val[p] = row_val[t]
                pos[n] = p + 1
    return row_ptr[S_prev]


@fastform
def _pack_transpose(M, MT):
    """MT_ba = M_ab, ``prange`` over blocks of 16 rows a: the packing of
    the support forms' transposed operands (Wᵗ, Hᵗ) and the unpacking of Wᵗ. Not an
    equation; it moves values and computes nothing."""
    R = M.shape[0]
    for ba in prange((R + 15) // 16):
        _transpose_block(M, MT, 16 * ba)
    return MT


@fastinline
def _support_sum(PT, ptr, idx, val, t, i0, a):
    """a_r = Σ_{s = ptr[t]}^{ptr[t+1]-1} val[s] · PT[idx[s], i0 + r] for every r < len(a): one sum
    over the support for the rows i0 .. i0 + len(a) − 1 at once, in support order (the loop
    over r vectorizes; each piece of a row of PT read is contiguous). With ``a`` a
    :func:`indexnet._jit.local_row` (a length fixed at compile time, in no other array) the
    partial sums stay in vector registers for the whole sum: one load of PT's row piece and
    one multiply-add per register and entry; a view of it (a block's last, shorter piece)
    runs the same loop on the stack row in L1."""
    m = a.shape[0]
    for r in range(m):
        a[r] = 0
    for s in range(ptr[t], ptr[t + 1]):
        v = val[s]
        p = PT[idx[s], i0:i0 + m]
        for r in range(m):
            a[r] += v * p[r]


@fastform
def forward_support_fast(WT, b, col_ptr, col_j, col_val, kind, alpha, Z, A, ZT):
    """Z_in = Σ_{j : A_jn ≠ 0} W_ij A_jn + b_i and A_in = σ(Z_in): D1.5 summed over the support of A^(l-1). derivations/dense.md#D1.6

    W is given input-major, ``WT`` (S_{l-1} × S_l) with WT_ji = W_ij; the support by
    sample comes from :func:`support_of`. Blocking: ``prange`` over pairs (block of rows i,
    block of samples n), the rows in blocks of :data:`SUPPORT_FORWARD_BYTES` (400 float32),
    the samples in :data:`SUPPORT_BLOCKS` blocks; for each sample n the block's sums over the
    support of column n are formed in registers, each entry (j, n) adding A_jn times the
    contiguous piece of row WT_j· (:func:`_support_sum`), and Z_·n = sums + b is stored
    sample-major into ``ZT`` (N × S_l, contiguous). A second ``prange`` over blocks of 16
    rows i turns ZT around into Z (its 16 columns read from L1 while their rows are
    written) and stores A_i· = σ(Z_i·) (``activations.activate_row``, vectorized).
    Performance contract: no allocation (``ZT`` from the caller; the register block is on
    the stack); work proportional to the nonzeros of A, not to its size (MNIST's pixels:
    about 19 %).
    """
    S, N = Z.shape
    width = SUPPORT_FORWARD_BYTES // WT.itemsize
    ni = (S + width - 1) // width
    ns = min(N, SUPPORT_BLOCKS)
    for q in prange(ni * ns):  # rows i0 .. i0+m−1, samples blk·N/ns up to (blk+1)·N/ns
        i0 = (q // ns) * width
        m = min(width, S - i0)
        blk = q % ns
        a = local_row(WT, SUPPORT_FORWARD_BYTES)
        for n in range(blk * N // ns, (blk + 1) * N // ns):
            if m == width:
                _support_sum(WT, col_ptr, col_j, col_val, n, i0, a)
            else:
                _support_sum(WT, col_ptr, col_j, col_val, n, i0, a[:m])
            z = ZT[n, i0:i0 + m]
            for r in range(m):
                z[r] = a[r] + b[i0 + r]
    for blk in prange((S + 15) // 16):  # Z = ZTᵗ, A = σ(Z), 16 rows i at a time
        for i in range(16 * blk, min(S, 16 * blk + 16)):
            z = Z[i]
            for n in range(N):
                z[n] = ZT[n, i]
            activate_row(z, A[i], kind, alpha)
    return A


@fastform
def weight_grad_support_fast(HT, row_ptr, row_n, row_val, dWT):
    """∂J/∂W_ij = Σ_{n : A_jn ≠ 0} H_in A_jn: D2.5 summed over the support of A^(l-1). derivations/dense.md#D2.7

    Written input-major, ``dWT`` (S_{l-1} × S_l) with dWT_ji = ∂J/∂W_ij (``_pack_transpose``
    turns it around); H is read sample-major, ``HT`` (N × S_l) with HT_ni = H_in; the
    support by row j comes from :func:`support_of`. Blocking: ``prange`` over pairs (block
    of rows i, block of rows j), the rows i in blocks of :data:`SUPPORT_GRAD_BYTES` (160
    float32; a thread works through one block of i at a time, so the pieces of Hᵗ it reads
    stay in cache), the rows j in :data:`SUPPORT_BLOCKS` blocks; for each j the block's sums
    over the samples with A_jn ≠ 0 are formed in registers (:func:`_support_sum` on the rows
    HT_n·) and stored into the row dWT_j· (0 for a row j with an empty support).
    Performance contract: no allocation; work proportional to the nonzeros of A.
    """
    S_prev, S = dWT.shape
    width = SUPPORT_GRAD_BYTES // dWT.itemsize
    ni = (S + width - 1) // width
    nj = min(S_prev, SUPPORT_BLOCKS)
    for q in prange(ni * nj):  # rows i0 .. i0+m−1, rows j blk·S_prev/nj up to (blk+1)·S_prev/nj
        i0 = (q // nj) * width
        m = min(width, S - i0)
        blk = q % nj
        a = local_row(dWT, SUPPORT_GRAD_BYTES)
        for j in range(blk * S_prev // nj, (blk + 1) * S_prev // nj):
            if m == width:
                _support_sum(HT, row_ptr, row_n, row_val, j, i0, a)
            else:
                _support_sum(HT, row_ptr, row_n, row_val, j, i0, a[:m])
            g = dWT[j, i0:i0 + m]
            for r in range(m):
                g[r] = a[r]
    return dWT


@fastform
def weight_grad_support_sgd_fast(HT, row_ptr, row_n, row_val, eta, WT):
    """W_ij ← W_ij − η Σ_{n : A_jn ≠ 0} H_in A_jn: D2.6 summed over the support of A^(l-1). derivations/dense.md#D2.8

    W is updated input-major, ``WT`` (S_{l-1} × S_l) with WT_ji = W_ij, and H read
    sample-major, ``HT`` (N × S_l). Blocking as :func:`weight_grad_support_fast`: for each
    row j with a nonempty support the block's sums over the samples with A_jn ≠ 0 are
    formed in registers (:func:`_support_sum` on the rows HT_n·) and η times them is
    subtracted from the piece of row WT_j·. A row j with A_jn = 0 for every n has all sums
    0 and is left as it is. Performance contract: no allocation; work proportional to the
    nonzeros of A.
    """
    S_prev, S = WT.shape
    width = SUPPORT_GRAD_BYTES // WT.itemsize
    ni = (S + width - 1) // width
    nj = min(S_prev, SUPPORT_BLOCKS)
    for q in prange(ni * nj):  # rows i0 .. i0+m−1, rows j blk·S_prev/nj up to (blk+1)·S_prev/nj
        i0 = (q // nj) * width
        m = min(width, S - i0)
        blk = q % nj
        a = local_row(WT, SUPPORT_GRAD_BYTES)
        for j in range(blk * S_prev // nj, (blk + 1) * S_prev // nj):
            if row_ptr[j + 1] > row_ptr[j]:
                if m == width:
                    _support_sum(HT, row_ptr, row_n, row_val, j, i0, a)
                else:
                    _support_sum(HT, row_ptr, row_n, row_val, j, i0, a[:m])
                w = WT[j, i0:i0 + m]
                for r in range(m):
                    w[r] -= eta * a[r]
    return WT
