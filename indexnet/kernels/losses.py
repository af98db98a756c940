"""Losses J(T, A^(L)) and their output "errors" Δ^(L) = ∂J/∂A^(L).

Beside ``derivations/losses.md``. Each loss is exactly its seed's definition with a
stated batch reduction; none is rescaled to match another:

=====================  =========================================  ==========  =========
name                   J                                          seed        reduction
=====================  =========================================  ==========  =========
``mse``                (1/N) Σ_n Σ_i (A_in - Y_in)²               000 eq. 2   mean
``half_se``            ½ Σ_n Σ_i (A_in - Y_in)²                   002 §5      sum
``euclidean``          1/(2N) Σ_n ‖a_n - t_n‖²                    004 eq 2.16 mean
``cross_entropy``      -(1/N) Σ_n Σ_i Y_in ln S_in                001 §4      mean
``binary_cross_entropy`` -(1/N) Σ_n Σ_i [Y ln A + (1-Y) ln(1-A)]  000 eq. 11  mean
=====================  =========================================  ==========  =========

Loss values are computed per sample in a ``prange`` over n (one output element per
iteration), then summed sequentially in sample order, so the value does not depend on the
thread count. Cross-entropies are evaluated from the pre-activation Z with a log-sum-exp
(softmax) or softplus (sigmoid), which never takes the log of an underflowed zero.
"""
import math

import numpy as np
from numba import prange

from indexnet._jit import exact, fastform, fastinline, fastserial, literal, serial
from indexnet.kernels._delta import kron
from indexnet.kernels.activations import activate_row, hadamard_row, logistic, row_sum, shifted_exp_sum, softplus


@serial
def _ordered_sum(per_sample):
    total = per_sample.dtype.type(0)
    for n in range(per_sample.shape[0]):
        total += per_sample[n]
    return total


# ------------------------------------------------------------------ squared errors
@exact
def squared_error_value_loops(A, Y, scale):
    """scale · Σ_n Σ_i (A_in - Y_in)², per-sample partial sums in ``prange``. derivations/losses.md#L1

    ``scale`` is 1/N for ``mse`` (L1), ½ for ``half_se`` (L2), 1/(2N) for ``euclidean`` (L3).
    """
    S_L, N = A.shape
    per_sample = np.empty(N, dtype=A.dtype)
    for n in prange(N):
        acc = A.dtype.type(0)
        for i in range(S_L):
            d = A[i, n] - Y[i, n]
            acc += d * d
        per_sample[n] = acc
    return scale * _ordered_sum(per_sample)


def squared_error_value_numpy(A, Y, scale):
    """scale · Σ (A - Y)², vectorized. derivations/losses.md#L1"""
    return scale * float(np.sum((A - Y) ** 2))


@literal
def squared_error_delta_literal(A, Y, scale, Delta):
    """Δ_in = Σ_j Σ_m scale · 2(A_jm - Y_jm) δ_ij δ_nm. derivations/losses.md#L4

    The derivative of scale·Σ_j Σ_m (A_jm - Y_jm)² with both Kronecker deltas kept.
    """
    S_L, N = A.shape
    one = Delta.dtype.type(1)
    two_scale = scale * 2
    for i in range(S_L):
        for n in range(N):
            acc = Delta.dtype.type(0)
            for j in range(S_L):
                for m in range(N):
                    acc += two_scale * (A[j, m] - Y[j, m]) * kron(i, j, one) * kron(n, m, one)
            Delta[i, n] = acc
    return Delta


@exact
def squared_error_delta_loops(A, Y, scale, Delta):
    """Δ_in = 2·scale·(A_in - Y_in), ``prange`` over rows i. derivations/losses.md#L4"""
    S_L, N = A.shape
    two_scale = scale * 2
    for i in prange(S_L):
        for n in range(N):
            Delta[i, n] = two_scale * (A[i, n] - Y[i, n])
    return Delta


def squared_error_delta_numpy(A, Y, scale, Delta):
    """Δ = 2·scale·(A - Y). derivations/losses.md#L4"""
    np.multiply(A - Y, scale * 2, out=Delta)
    return Delta


# ------------------------------------------------------------ categorical cross-entropy
@exact
def cross_entropy_value_loops(Z, Y):
    """-(1/N) Σ_n Σ_i Y_in ln S_in with ln S_in = Z_in - m_n - ln Σ_k e^{Z_kn - m_n}. derivations/losses.md#L5

    Evaluated from the softmax layer's pre-activation Z (log-sum-exp), ``prange`` over n.
    """
    K, N = Z.shape
    per_sample = np.empty(N, dtype=Z.dtype)
    for n in prange(N):
        m, total = shifted_exp_sum(Z, n)
        lse = m + math.log(total)
        acc = Z.dtype.type(0)
        for i in range(K):
            if Y[i, n] != 0:
                acc -= Y[i, n] * (Z[i, n] - lse)
        per_sample[n] = acc
    return _ordered_sum(per_sample) / N


def cross_entropy_value_numpy(Z, Y):
    """-(1/N) Σ Y ⊙ log_softmax(Z), vectorized. derivations/losses.md#L5"""
    m = Z.max(axis=0, keepdims=True)
    log_s = Z - m - np.log(np.exp(Z - m).sum(axis=0, keepdims=True))
    return -float(np.sum(np.where(Y != 0, Y * log_s, 0))) / Z.shape[1]


@literal
def cross_entropy_delta_literal(S, Y, Delta):
    """Δ_in = Σ_j Σ_m -(1/N) Y_jm / S_jm δ_ij δ_nm. derivations/losses.md#L6"""
    K, N = S.shape
    one = Delta.dtype.type(1)
    inv_n = one / N
    for i in range(K):
        for n in range(N):
            acc = Delta.dtype.type(0)
            for j in range(K):
                for m in range(N):
                    acc += -(Y[j, m] / S[j, m]) * inv_n * kron(i, j, one) * kron(n, m, one)
            Delta[i, n] = acc
    return Delta


@exact
def cross_entropy_delta_loops(S, Y, Delta):
    """Δ_in = -Y_in / (N S_in), ``prange`` over rows i. derivations/losses.md#L6

    Feeds the softmax Jacobian-vector product (S3). The fused path (L7) avoids the
    division and is what the trainer uses.
    """
    K, N = S.shape
    inv_n = Delta.dtype.type(1) / N
    for i in prange(K):
        for n in range(N):
            Delta[i, n] = -(Y[i, n] / S[i, n]) * inv_n
    return Delta


def cross_entropy_delta_numpy(S, Y, Delta):
    """Δ = -(1/N) Y ⊘ S. derivations/losses.md#L6"""
    np.multiply(-(Y / S), 1 / S.shape[1], out=Delta)
    return Delta


@literal
def cross_entropy_delta_from_z_literal(Z, Y, c, Delta):
    """Δ_in = Σ_j Σ_m -c Y_jm (Σ_k e^{Z_km - Z_jm}) δ_ij δ_nm, from Z. derivations/losses.md#L6b

    1/S_jm = Σ_k e^{Z_km - Z_jm} never divides by an underflowed S; a term with
    Y_jm = 0 is 0 exactly (it is skipped, not multiplied by a possibly infinite sum).
    ``c`` is 1/N (mean over samples) or 1 (sum).
    """
    K, N = Z.shape
    one = Delta.dtype.type(1)
    for i in range(K):
        for n in range(N):
            acc = Delta.dtype.type(0)
            for j in range(K):
                for m in range(N):
                    if Y[j, m] != 0:
                        inv_s = Delta.dtype.type(0)
                        for k in range(K):
                            inv_s += math.exp(Z[k, m] - Z[j, m])
                        acc += -c * Y[j, m] * inv_s * kron(i, j, one) * kron(n, m, one)
            Delta[i, n] = acc
    return Delta


@exact
def cross_entropy_delta_from_z_loops(Z, Y, c, Delta):
    """Δ_in = -c Y_in Σ_k e^{Z_kn - Z_in} (0 where Y_in = 0), ``prange`` over rows i. derivations/losses.md#L6b"""
    K, N = Z.shape
    for i in prange(K):
        for n in range(N):
            if Y[i, n] != 0:
                inv_s = Delta.dtype.type(0)
                for k in range(K):
                    inv_s += math.exp(Z[k, n] - Z[i, n])
                Delta[i, n] = -c * Y[i, n] * inv_s
            else:
                Delta[i, n] = Delta.dtype.type(0)
    return Delta


def cross_entropy_delta_from_z_numpy(Z, Y, c, Delta):
    """Δ = -c Y ⊙ Σ_k e^{Z_k· - Z}, 0 where Y = 0. derivations/losses.md#L6b"""
    K = Z.shape[0]
    inv_s = np.zeros_like(Z)
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(K):  # sequential over k, as the loops form sums
            inv_s += np.exp(Z[k] - Z)
        Delta[...] = np.where(Y != 0, -c * Y * inv_s, 0.0)
    return Delta


# ------------------------------------------------- fused softmax + cross-entropy: H = (S - Y)/N
@literal
def cross_entropy_output_grad_literal(S, Y, H):
    """H_in = Σ_k Δ_kn S_kn (δ_ki - S_in), Δ_kn = -(1/N) Y_kn / S_kn: L6 then S3, unreduced. derivations/losses.md#L7

    The chain rule as written, before the collapse: the output error of L6 enters the
    softmax Jacobian-vector product of S3, the delta δ_ki kept as a factor. It divides
    by S (terms with Y_kn = 0 are exact zeros and skip the division), so it needs
    S_kn > 0 where Y_kn ≠ 0, and it does not use Σ_k Y_kn = 1: for targets whose columns
    do not sum to 1 it is the gradient and :func:`cross_entropy_output_grad_loops` is not.
    """
    K, N = S.shape
    one = H.dtype.type(1)
    zero = H.dtype.type(0)
    inv_n = one / N
    for i in range(K):
        for n in range(N):
            acc = zero
            for k in range(K):
                delta_kn = -(Y[k, n] / S[k, n]) * inv_n if Y[k, n] != 0 else zero
                acc += delta_kn * S[k, n] * (kron(k, i, one) - S[i, n])
            H[i, n] = acc
    return H


@exact
def cross_entropy_output_grad_loops(S, Y, H):
    """H_in = (S_in - Y_in)/N, the collapsed L7 (Σ_k Y_kn = 1), ``prange`` over rows i. derivations/losses.md#L7"""
    K, N = S.shape
    inv_n = H.dtype.type(1) / N
    for i in prange(K):
        for n in range(N):
            H[i, n] = (S[i, n] - Y[i, n]) * inv_n
    return H


def cross_entropy_output_grad_numpy(S, Y, H):
    """H = (S - Y)/N. derivations/losses.md#L7"""
    np.multiply(S - Y, 1 / S.shape[1], out=H)
    return H


# --------------------------------------- fused sigmoid + binary cross-entropy: H = (A - Y)/N
@literal
def binary_cross_entropy_output_grad_literal(A, Y, H):
    """H_in = Σ_k Σ_m Δ_km A_km (1 - A_km) δ_ki δ_mn, Δ_km of L9: L9 then A6 through D2.13, unreduced. derivations/losses.md#L7b

    The chain rule as written, before the collapse: the output error of L9 times the
    diagonal sigmoid Jacobian, both deltas kept. It divides by A and 1 - A, so it needs
    0 < A < 1 (a saturated sigmoid output gives ∞ · 0); the collapsed
    :func:`binary_cross_entropy_output_grad_loops` does not.
    """
    S_L, N = A.shape
    one = H.dtype.type(1)
    inv_n = one / N
    for i in range(S_L):
        for n in range(N):
            acc = H.dtype.type(0)
            for k in range(S_L):
                for m in range(N):
                    delta_km = (-(Y[k, m] / A[k, m]) + (one - Y[k, m]) / (one - A[k, m])) * inv_n
                    acc += delta_km * (A[k, m] * (one - A[k, m])) * kron(k, i, one) * kron(m, n, one)
            H[i, n] = acc
    return H


@exact
def binary_cross_entropy_output_grad_loops(A, Y, H):
    """H_in = (A_in - Y_in)/N, the collapsed L7b, ``prange`` over rows i. derivations/losses.md#L7b"""
    S_L, N = A.shape
    inv_n = H.dtype.type(1) / N
    for i in prange(S_L):
        for n in range(N):
            H[i, n] = (A[i, n] - Y[i, n]) * inv_n
    return H


def binary_cross_entropy_output_grad_numpy(A, Y, H):
    """H = (A - Y)/N. derivations/losses.md#L7b"""
    np.multiply(A - Y, 1 / A.shape[1], out=H)
    return H


# ------------------------------------------------------------ binary cross-entropy
@exact
def binary_cross_entropy_value_loops(Z, Y):
    """-(1/N) Σ [Y ln σ(Z) + (1-Y) ln(1-σ(Z))] = (1/N) Σ [softplus(Z) - Y Z]. derivations/losses.md#L8

    From the sigmoid layer's pre-activation Z: ln σ(z) = -softplus(-z),
    ln(1 - σ(z)) = -softplus(z), finite for every finite z.
    """
    S_L, N = Z.shape
    per_sample = np.empty(N, dtype=Z.dtype)
    for n in prange(N):
        acc = Z.dtype.type(0)
        for i in range(S_L):
            acc += softplus(Z[i, n]) - Y[i, n] * Z[i, n]
        per_sample[n] = acc
    return _ordered_sum(per_sample) / N


def binary_cross_entropy_value_numpy(Z, Y):
    """(1/N) Σ [softplus(Z) - Y Z], vectorized. derivations/losses.md#L8"""
    return float(np.sum(np.logaddexp(0, Z) - Y * Z)) / Z.shape[1]


@literal
def binary_cross_entropy_delta_literal(A, Y, Delta):
    """Δ_in = Σ_j Σ_m (1/N)(-Y_jm/A_jm + (1-Y_jm)/(1-A_jm)) δ_ij δ_nm. derivations/losses.md#L9"""
    S_L, N = A.shape
    one = Delta.dtype.type(1)
    inv_n = one / N
    for i in range(S_L):
        for n in range(N):
            acc = Delta.dtype.type(0)
            for j in range(S_L):
                for m in range(N):
                    term = -(Y[j, m] / A[j, m]) + (one - Y[j, m]) / (one - A[j, m])
                    acc += term * inv_n * kron(i, j, one) * kron(n, m, one)
            Delta[i, n] = acc
    return Delta


@exact
def binary_cross_entropy_delta_loops(A, Y, Delta):
    """Δ_in = (1/N)(-Y_in/A_in + (1-Y_in)/(1-A_in)), ``prange`` over rows i. derivations/losses.md#L9"""
    S_L, N = A.shape
    one = Delta.dtype.type(1)
    inv_n = one / N
    for i in prange(S_L):
        for n in range(N):
            Delta[i, n] = (-(Y[i, n] / A[i, n]) + (one - Y[i, n]) / (one - A[i, n])) * inv_n
    return Delta


def binary_cross_entropy_delta_numpy(A, Y, Delta):
    """Δ = (1/N)(-Y ⊘ A + (1-Y) ⊘ (1-A)). derivations/losses.md#L9"""
    np.multiply(-(Y / A) + (1 - Y) / (1 - A), 1 / A.shape[1], out=Delta)
    return Delta


@literal
def binary_cross_entropy_delta_from_z_literal(Z, Y, c, Delta):
    """Δ_in = Σ_j Σ_m c(-Y_jm (1 + e^{-Z_jm}) + (1-Y_jm)(1 + e^{Z_jm})) δ_ij δ_nm, from Z. derivations/losses.md#L9b

    1/σ(z) = 1 + e^{-z} and 1/(1 - σ(z)) = 1 + eᶻ: no division by a saturated A; a term
    whose factor Y or 1 - Y is 0 is skipped (0, not 0 · ∞). ``c`` is 1/N or 1.
    """
    S, N = Z.shape
    one = Delta.dtype.type(1)
    for i in range(S):
        for n in range(N):
            acc = Delta.dtype.type(0)
            for j in range(S):
                for m in range(N):
                    term = Delta.dtype.type(0)
                    if Y[j, m] != 0:
                        term -= Y[j, m] * (one + math.exp(-Z[j, m]))
                    if Y[j, m] != one:
                        term += (one - Y[j, m]) * (one + math.exp(Z[j, m]))
                    acc += c * term * kron(i, j, one) * kron(n, m, one)
            Delta[i, n] = acc
    return Delta


@exact
def binary_cross_entropy_delta_from_z_loops(Z, Y, c, Delta):
    """Δ_in = c(-Y_in (1 + e^{-Z_in}) + (1-Y_in)(1 + e^{Z_in})), zero factors skipped, ``prange`` over rows i. derivations/losses.md#L9b"""
    S, N = Z.shape
    one = Delta.dtype.type(1)
    for i in prange(S):
        for n in range(N):
            term = Delta.dtype.type(0)
            if Y[i, n] != 0:
                term -= Y[i, n] * (one + math.exp(-Z[i, n]))
            if Y[i, n] != one:
                term += (one - Y[i, n]) * (one + math.exp(Z[i, n]))
            Delta[i, n] = c * term
    return Delta


def binary_cross_entropy_delta_from_z_numpy(Z, Y, c, Delta):
    """Δ = c(-Y ⊙ (1 + e^{-Z}) + (1-Y) ⊙ (1 + e^{Z})), zero factors skipped. derivations/losses.md#L9b"""
    with np.errstate(over="ignore", invalid="ignore"):
        pos = np.where(Y != 0, -(Y * (1 + np.exp(-Z))), 0.0)
        neg = np.where(Y != 1, (1 - Y) * (1 + np.exp(Z)), 0.0)
        Delta[...] = c * (0.0 + pos + neg)
    return Delta


# ======================================================== fused output passes (trainer)
# One pass over the output layer's Z gives A^(L), J and H^(L) = ∂J/∂Z^(L). Each is a
# numbered equation composed of the ones it fuses (losses.md L10-L12); the per-sample
# terms go to ``per_sample`` (no allocation) and are summed after the parallel loop
# (``activations.row_sum``: vectorized, so not in sample order; the value does not depend
# on the thread count). ``prange`` over samples n; the trainer calls the serial twin when
# the output layer is small (every classifier here).


@fastform
def softmax_cross_entropy_fast(Z, Y, S, H, per_sample):
    """S = softmax(Z) (S1), J = L5 and H = (S − Y)/N (L7) in one pass over Z; returns J. derivations/losses.md#L10

    Per column n: the log-sum-exp ℓ_n of S1/L5 once (``activations.shifted_exp_sum``),
    then S_in = e^{Z_in − ℓ_n}, H_in = (S_in − Y_in)/N and the term −Σ_i Y_in (Z_in − ℓ_n).
    Performance contract: no allocation, one pass over Z and Y.
    """
    K, N = Z.shape
    inv_n = Z.dtype.type(1) / N
    for n in prange(N):
        m, total = shifted_exp_sum(Z, n)
        lse = m + math.log(total)
        acc = Z.dtype.type(0)
        for i in range(K):
            s = math.exp(Z[i, n] - lse)
            S[i, n] = s
            H[i, n] = (s - Y[i, n]) * inv_n
            if Y[i, n] != 0:
                acc -= Y[i, n] * (Z[i, n] - lse)
        per_sample[n] = acc
    return row_sum(per_sample) / N


@fastform
def sigmoid_binary_cross_entropy_fast(Z, Y, A, H, per_sample):
    """A = σ(Z) (A4b), J = L8 and H = (A − Y)/N (L7b) in one pass over Z; returns J. derivations/losses.md#L11

    Performance contract: no allocation, one pass over Z and Y.
    """
    K, N = Z.shape
    inv_n = Z.dtype.type(1) / N
    for n in prange(N):
        acc = Z.dtype.type(0)
        for i in range(K):
            z = Z[i, n]
            a = logistic(z)
            A[i, n] = a
            H[i, n] = (a - Y[i, n]) * inv_n
            acc += softplus(z) - Y[i, n] * z
        per_sample[n] = acc
    return row_sum(per_sample) / N


#: samples per ``prange`` iteration of L12's fast form, which sweeps each output row over a
#: block of samples
SAMPLE_BLOCK = 4096


@fastform
def squared_error_output_fast(Z, Y, kind, alpha, scale, A, H, per_sample):
    """A = σ(Z) (A0), J = L1 and H = 2·scale·(A − Y) ⊙ σ'(Z) (L4, D2.13) in one pass; returns J. derivations/losses.md#L12

    σ' from Z or A as ``activations.SIGMA_PRIME_FROM_FAST`` declares (both passed).
    Performance contract: no allocation, one pass over Z and Y.
    """
    K, N = Z.shape
    two_scale = Z.dtype.type(2 * scale)
    for c in prange((N + SAMPLE_BLOCK - 1) // SAMPLE_BLOCK):  # blocks of samples; in each, row by row (vectorized)
        lo = c * SAMPLE_BLOCK
        hi = min(lo + SAMPLE_BLOCK, N)
        for n in range(lo, hi):
            per_sample[n] = 0
        for i in range(K):
            z, a, h = Z[i, lo:hi], A[i, lo:hi], H[i, lo:hi]
            activate_row(z, a, kind, alpha)
            _error_row(a, Y[i, lo:hi], two_scale, h, per_sample[lo:hi])
            hadamard_row(h, z, a, kind, alpha, h)
    return row_sum(per_sample) * scale


@fastinline
def _error_row(a, y, two_scale, h, per_sample):
    """Along one row i of L12: d_n = A_in − Y_in, per_sample_n += d_n² (L1's term), h_n = 2·scale·d_n (L4)."""
    for n in range(a.shape[0]):
        d = a[n] - y[n]
        per_sample[n] += d * d
        h[n] = two_scale * d
