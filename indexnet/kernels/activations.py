"""Activations σ, their derivatives σ', and softmax with its Jacobian.

Beside ``derivations/activations.md``. Elementwise activations act on any
``(S, N)`` array (a convolution's ``(C, H, W, N)`` is passed flattened to
``(C·H·W, N)``). ``kind`` is one of the integer codes below, chosen once per layer, so
the branch sits outside the loops over elements.
"""
import math

import numpy as np
from numba import prange

from indexnet._jit import exact, literal, serial
from indexnet.kernels._delta import kron

IDENTITY, RELU, LEAKY_RELU, SIGMOID, TANH = 0, 1, 2, 3, 4
#: name -> kind code of the elementwise activations (softmax is not elementwise)
CODES = {"identity": IDENTITY, "relu": RELU, "leaky_relu": LEAKY_RELU, "sigmoid": SIGMOID, "tanh": TANH}


@serial
def sigma(z, kind, alpha):
    """σ(z) of one element (derivations/activations.md#A0, eqs. A1-A5); sigmoid in its overflow-free form (A4b)."""
    if kind == RELU:
        return z if z > 0 else z - z
    if kind == LEAKY_RELU:
        return z if z > 0 else alpha * z
    if kind == SIGMOID:
        if z >= 0:
            return 1 / (1 + math.exp(-z))
        e = math.exp(z)
        return e / (1 + e)
    if kind == TANH:
        return math.tanh(z)
    return z


@serial
def sigma_prime(z, a, kind, alpha):
    """σ'(z) of one element, using a = σ(z) where that is cheaper (derivations/activations.md#A6)."""
    one = a - a + 1
    if kind == RELU:
        return one if z > 0 else one - one
    if kind == LEAKY_RELU:
        return one if z > 0 else alpha * one
    if kind == SIGMOID:
        return a * (one - a)
    if kind == TANH:
        return one - a * a
    return one


@serial
def sigma_prime_z(z, a, kind, alpha):
    """σ'(z) of one element with sigmoid and tanh taken from z (derivations/activations.md#A6).

    σ'(z) = e/(1 + e)² with e = exp(-|z|) for the sigmoid and 4e/(1 + e)² with
    e = exp(-2|z|) for tanh (sech² z): a few ulps for every z. The forms from a = σ(z),
    a(1 - a) and 1 - a², lose relative accuracy as the output saturates (u·e^{|z|} and
    u·e^{2|z|}/4: 1e-3 for the sigmoid at z = 30, 4 % for tanh at z = 18, and 0 for
    tanh from z ≈ 19.1 on, where tanh z rounds to 1). The exact build, and so the oracle,
    uses this; :func:`sigma_prime` (from a) stays for the trainer's fast path.
    """
    if kind == SIGMOID:
        e = math.exp(-abs(z))
        return e / ((1 + e) * (1 + e))
    if kind == TANH:
        e = math.exp(-2 * abs(z))
        return 4 * e / ((1 + e) * (1 + e))
    return sigma_prime(z, a, kind, alpha)


# --------------------------------------------------------------------------- A = σ(Z)
@literal
def activation_literal(Z, kind, alpha, A):
    """A_in = σ(Z_in), element by element. derivations/activations.md#A0"""
    S, N = Z.shape
    for i in range(S):
        for n in range(N):
            A[i, n] = sigma(Z[i, n], kind, alpha)
    return A


@exact
def activation_loops(Z, kind, alpha, A):
    """A_in = σ(Z_in), ``prange`` over rows i. derivations/activations.md#A0"""
    S, N = Z.shape
    for i in prange(S):
        for n in range(N):
            A[i, n] = sigma(Z[i, n], kind, alpha)
    return A


def activation_numpy(Z, kind, alpha, A):
    """A = σ(Z), vectorized. derivations/activations.md#A0"""
    if kind == RELU:
        np.maximum(Z, 0, out=A)
    elif kind == LEAKY_RELU:
        np.copyto(A, np.where(Z > 0, Z, alpha * Z))
    elif kind == SIGMOID:
        e = np.exp(-np.abs(Z))
        np.copyto(A, np.where(Z >= 0, 1 / (1 + e), e / (1 + e)))
    elif kind == TANH:
        np.tanh(Z, out=A)
    else:
        np.copyto(A, Z)
    return A


# ---------------------------------------------------------------------- ∂σ/∂Z elementwise
@literal
def activation_grad_literal(Z, A, kind, alpha, dsig):
    """dsig_in = σ'(Z_in), element by element; sigmoid and tanh from Z. derivations/activations.md#A6"""
    S, N = Z.shape
    for i in range(S):
        for n in range(N):
            dsig[i, n] = sigma_prime_z(Z[i, n], A[i, n], kind, alpha)
    return dsig


@exact
def activation_grad_loops(Z, A, kind, alpha, dsig):
    """dsig_in = σ'(Z_in), ``prange`` over rows i. derivations/activations.md#A6"""
    S, N = Z.shape
    for i in prange(S):
        for n in range(N):
            dsig[i, n] = sigma_prime_z(Z[i, n], A[i, n], kind, alpha)
    return dsig


def activation_grad_numpy(Z, A, kind, alpha, dsig):
    """∂σ/∂Z, vectorized; sigmoid and tanh from Z. derivations/activations.md#A6"""
    if kind == RELU:
        np.copyto(dsig, (Z > 0).astype(dsig.dtype))
    elif kind == LEAKY_RELU:
        np.copyto(dsig, np.where(Z > 0, 1, alpha).astype(dsig.dtype))
    elif kind == SIGMOID:
        e = np.exp(-np.abs(Z))
        np.divide(e, (1 + e) * (1 + e), out=dsig)
    elif kind == TANH:
        e = np.exp(-2 * np.abs(Z))
        np.divide(4 * e, (1 + e) * (1 + e), out=dsig)
    else:
        dsig.fill(1)
    return dsig


# ------------------------------------------------------------------------------ softmax
@serial
def shifted_exp_sum(Z, n):
    """m_n = max_k Z_kn and Σ_k exp(Z_kn - m_n) of column n (eq. S1); shared with the
    cross-entropy value (L5), which needs the same log-sum-exp."""
    K = Z.shape[0]
    m = Z[0, n]
    for k in range(1, K):
        if Z[k, n] > m:
            m = Z[k, n]
    total = Z.dtype.type(0)
    for k in range(K):
        total += math.exp(Z[k, n] - m)
    return m, total


@literal
def softmax_literal(Z, S):
    """S_in = exp(Z_in - m_n) / Σ_k exp(Z_kn - m_n), m_n = max_k Z_kn. derivations/activations.md#S1"""
    K, N = Z.shape
    for n in range(N):
        m = Z[0, n]
        for k in range(1, K):
            if Z[k, n] > m:
                m = Z[k, n]
        total = Z.dtype.type(0)
        for k in range(K):
            total += math.exp(Z[k, n] - m)
        for i in range(K):
            S[i, n] = math.exp(Z[i, n] - m) / total
    return S


@exact
def softmax_loops(Z, S):
    """Max-shifted softmax, ``prange`` over samples n (each column is one output). derivations/activations.md#S1

    Bit-identical to :func:`softmax_literal`: the same operations in the same order.
    """
    K, N = Z.shape
    for n in prange(N):
        m, total = shifted_exp_sum(Z, n)
        for i in range(K):
            S[i, n] = math.exp(Z[i, n] - m) / total
    return S


def softmax_numpy(Z, S):
    """Max-shifted softmax, vectorized over samples. derivations/activations.md#S1"""
    E = np.exp(Z - Z.max(axis=0, keepdims=True))
    np.divide(E, E.sum(axis=0, keepdims=True), out=S)
    return S


# --------------------------------------------------------- H = J_s^t Δ (softmax JVP)
@literal
def softmax_jvp_literal(S, Delta, H):
    """H_in = Σ_k Δ_kn ∂S_kn/∂Z_in = Σ_k Δ_kn S_kn (δ_ki - S_in). derivations/activations.md#S3

    The full Jacobian ∂s_k/∂z_i = s_k(δ_ki - s_i) (seed 001 appendix F) applied to Δ
    one column at a time, delta kept. Agrees with :func:`softmax_jvp_loops` to rounding,
    not bit for bit (the collapsed form factors s_i out of the sum): within
    2γ_{K+2} S_in(|Δ_in| + Σ_k |Δ_kn| S_kn), an absolute bound that grows with K.
    """
    K, N = S.shape
    one = H.dtype.type(1)
    for i in range(K):
        for n in range(N):
            acc = H.dtype.type(0)
            for k in range(K):
                acc += Delta[k, n] * S[k, n] * (kron(k, i, one) - S[i, n])
            H[i, n] = acc
    return H


@exact
def softmax_jvp_loops(S, Delta, H):
    """H_in = S_in (Δ_in - Σ_k Δ_kn S_kn), ``prange`` over samples n. derivations/activations.md#S3"""
    K, N = S.shape
    for n in prange(N):
        dot = H.dtype.type(0)
        for k in range(K):
            dot += Delta[k, n] * S[k, n]
        for i in range(K):
            H[i, n] = S[i, n] * (Delta[i, n] - dot)
    return H


def softmax_jvp_numpy(S, Delta, H):
    """H = S ⊙ (Δ - J_K J_Kᵗ(Δ ⊙ S)), vectorized. derivations/activations.md#S3"""
    np.multiply(S, Delta - (Delta * S).sum(axis=0, keepdims=True), out=H)
    return H
