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

from indexnet._jit import exact, fastform, fastserial, literal, serial
from indexnet.kernels._delta import kron
from indexnet.kernels.activations import activate_row, logistic, shifted_exp_sum, sigma_prime_inlined, softplus


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
    S, N = A.shape
    per_sample = np.empty(N, dtype=A.dtype)
    for n in prange(N):
        acc = A.dtype.type(0)
        for i in range(S):
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
    S, N = A.shape
    one = Delta.dtype.type(1)
    two_scale = scale * 2
    for i in range(S):
        for n in range(N):
            acc = Delta.dtype.type(0)
            for j in range(S):
                for m in range(N):
                    acc += two_scale * (A[j, m] - Y[j, m]) * kron(i, j, one) * kron(n, m, one)
            Delta[i, n] = acc
    return Delta


@exact
def squared_error_delta_loops(A, Y, scale, Delta):
    """Δ_in = 2·scale·(A_in - Y_in), ``prange`` over rows i. derivations/losses.md#L4"""
    S, N = A.shape
    two_scale = scale * 2
    for i in prange(S):
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


# ------------------------------------------ fused softmax + CE, sigmoid + BCE: H = (A - Y)/N
@literal
def fused_output_grad_literal(A, Y, H):
    """H_in = ∂J/∂Z_in = Σ_k (-(1/N) Y_kn / S_kn) S_kn (δ_ki - S_in) collapsed to (S_in - Y_in)/N. derivations/losses.md#L7

    Serial statement of the collapsed result; softmax + cross-entropy (seed 001
    appendix F) and sigmoid + binary cross-entropy give the same formula.
    """
    S, N = A.shape
    inv_n = H.dtype.type(1) / N
    for i in range(S):
        for n in range(N):
            H[i, n] = (A[i, n] - Y[i, n]) * inv_n
    return H


@exact
def fused_output_grad_loops(A, Y, H):
    """H_in = (A_in - Y_in)/N, ``prange`` over rows i. derivations/losses.md#L7"""
    S, N = A.shape
    inv_n = H.dtype.type(1) / N
    for i in prange(S):
        for n in range(N):
            H[i, n] = (A[i, n] - Y[i, n]) * inv_n
    return H


def fused_output_grad_numpy(A, Y, H):
    """H = (A - Y)/N. derivations/losses.md#L7"""
    np.multiply(A - Y, 1 / A.shape[1], out=H)
    return H


# ------------------------------------------------------------ binary cross-entropy
@exact
def binary_cross_entropy_value_loops(Z, Y):
    """-(1/N) Σ [Y ln σ(Z) + (1-Y) ln(1-σ(Z))] = (1/N) Σ [softplus(Z) - Y Z]. derivations/losses.md#L8

    From the sigmoid layer's pre-activation Z: ln σ(z) = -softplus(-z),
    ln(1 - σ(z)) = -softplus(z), finite for every finite z.
    """
    S, N = Z.shape
    per_sample = np.empty(N, dtype=Z.dtype)
    for n in prange(N):
        acc = Z.dtype.type(0)
        for i in range(S):
            acc += softplus(Z[i, n]) - Y[i, n] * Z[i, n]
        per_sample[n] = acc
    return _ordered_sum(per_sample) / N


def binary_cross_entropy_value_numpy(Z, Y):
    """(1/N) Σ [softplus(Z) - Y Z], vectorized. derivations/losses.md#L8"""
    return float(np.sum(np.logaddexp(0, Z) - Y * Z)) / Z.shape[1]


@literal
def binary_cross_entropy_delta_literal(A, Y, Delta):
    """Δ_in = Σ_j Σ_m (1/N)(-Y_jm/A_jm + (1-Y_jm)/(1-A_jm)) δ_ij δ_nm. derivations/losses.md#L9"""
    S, N = A.shape
    one = Delta.dtype.type(1)
    inv_n = one / N
    for i in range(S):
        for n in range(N):
            acc = Delta.dtype.type(0)
            for j in range(S):
                for m in range(N):
                    term = -(Y[j, m] / A[j, m]) + (one - Y[j, m]) / (one - A[j, m])
                    acc += term * inv_n * kron(i, j, one) * kron(n, m, one)
            Delta[i, n] = acc
    return Delta


@exact
def binary_cross_entropy_delta_loops(A, Y, Delta):
    """Δ_in = (1/N)(-Y_in/A_in + (1-Y_in)/(1-A_in)), ``prange`` over rows i. derivations/losses.md#L9"""
    S, N = A.shape
    one = Delta.dtype.type(1)
    inv_n = one / N
    for i in prange(S):
        for n in range(N):
            Delta[i, n] = (-(Y[i, n] / A[i, n]) + (one - Y[i, n]) / (one - A[i, n])) * inv_n
    return Delta


def binary_cross_entropy_delta_numpy(A, Y, Delta):
    """Δ = (1/N)(-Y ⊘ A + (1-Y) ⊘ (1-A)). derivations/losses.md#L9"""
    np.multiply(-(Y / A) + (1 - Y) / (1 - A), 1 / A.shape[1], out=Delta)
    return Delta


# ======================================================== fused output passes (trainer)
# One pass over the output layer's Z gives A^(L), J and H^(L) = ∂J/∂Z^(L). Each is a
# numbered equation composed of the ones it fuses (losses.md L10-L12); the per-sample
# terms go to ``per_sample`` (no allocation) and are summed in sample order, as the
# value kernels do. ``prange`` over samples n; the trainer calls the serial twin when
# the output layer is small (every classifier here).
@fastserial
def _sample_order_sum(per_sample):
    total = per_sample.dtype.type(0)
    for n in range(per_sample.shape[0]):
        total += per_sample[n]
    return total


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
    return _sample_order_sum(per_sample) / N


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
    return _sample_order_sum(per_sample) / N


@fastform
def squared_error_output_fast(Z, Y, kind, alpha, scale, A, H, per_sample):
    """A = σ(Z) (A0), J = L1 and H = 2·scale·(A − Y) ⊙ σ'(Z) (L4, D2.13) in one pass; returns J. derivations/losses.md#L12

    σ' from Z or A as ``activations.SIGMA_PRIME_FROM`` declares (both passed).
    Performance contract: no allocation, one pass over Z and Y.
    """
    K, N = Z.shape
    two_scale = Z.dtype.type(2 * scale)
    for i in range(K):  # σ row by row (vectorized), then the per-sample terms
        activate_row(Z[i], A[i], kind, alpha)
    for n in prange(N):
        acc = Z.dtype.type(0)
        for i in range(K):
            d = A[i, n] - Y[i, n]
            acc += d * d
            H[i, n] = two_scale * d * sigma_prime_inlined(Z[i, n], A[i, n], kind, alpha)
        per_sample[n] = acc
    return _sample_order_sum(per_sample) * scale
