"""Activations σ, their derivatives σ', and softmax with its Jacobian.

Beside ``derivations/activations.md``. Elementwise activations act on any
``(S, N)`` array (a convolution's ``(C, H, W, N)`` is passed flattened to
``(C·H·W, N)``). ``kind`` is one of the integer codes below, chosen once per layer, so
the branch sits outside the loops over elements.
"""
import math

import numba
import numpy as np
from llvmlite import ir as llvm_ir
from numba import prange
from numba.extending import intrinsic

from indexnet._jit import exact, fastform, fastinline, fastrow, literal, renamed, serial
from indexnet.kernels._delta import kron

IDENTITY, RELU, LEAKY_RELU, SIGMOID, TANH, SOFTPLUS = 0, 1, 2, 3, 4, 5
#: name -> kind code of the elementwise activations (softmax is not elementwise)
CODES = {"identity": IDENTITY, "relu": RELU, "leaky_relu": LEAKY_RELU, "sigmoid": SIGMOID, "tanh": TANH,
         "softplus": SOFTPLUS}
#: name -> the argument σ' is computed from (eq. A6): ``"Z"`` (the pre-activation) or
#: ``"A"`` (the activation σ(Z), cheaper where σ' is a function of it). Every engine
#: passes both Z and A to :func:`sigma_prime`, which reads only the declared one
#: (tests/test_activations.py checks that the other argument is ignored).
#: which argument σ' reads in the reference build (literal, loops and numpy forms, hence the
#: oracle): Z everywhere, the sigmoid and tanh in cancellation-free forms (derivations/activations.md#A6)
SIGMA_PRIME_FROM = {"identity": "Z", "relu": "Z", "leaky_relu": "Z", "sigmoid": "Z", "tanh": "Z", "softplus": "Z"}
#: which argument σ' reads in the fast forms and the trainer's fast path (:func:`sigma_prime`):
#: A for the sigmoid and tanh, no second exponential, at the cost of relative accuracy at saturation
SIGMA_PRIME_FROM_FAST = {**SIGMA_PRIME_FROM, "sigmoid": "A", "tanh": "A"}


@serial
def softplus(x):
    """ln(1 + eˣ) without overflow: max(x, 0) + ln(1 + e^{-|x|}) (derivations/losses.md#L5b); the activation A7 and the BCE value L8."""
    return max(x, x - x) + math.log1p(math.exp(-abs(x)))


@serial
def logistic(z):
    """1/(1 + e^{-z}) without overflow (derivations/activations.md#A4b): e^{-|z|} is never above 1."""
    if z >= 0:
        return 1 / (1 + math.exp(-z))
    e = math.exp(z)
    return e / (1 + e)


@serial
def sigma(z, kind, alpha):
    """σ(z) of one element (derivations/activations.md#A0, eqs. A1-A5, A7); sigmoid in its overflow-free form (A4b)."""
    if kind == RELU:
        return z if z > 0 else z - z
    if kind == LEAKY_RELU:
        return z if z > 0 else alpha * z
    if kind == SIGMOID:
        return logistic(z)
    if kind == TANH:
        return math.tanh(z)
    if kind == SOFTPLUS:
        return softplus(z)
    return z


@serial
def sigma_prime(z, a, kind, alpha):
    """σ'(z) of one element from z or from a = σ(z), as :data:`SIGMA_PRIME_FROM_FAST` declares (derivations/activations.md#A6)."""
    one = a - a + 1
    if kind == RELU:
        return one if z > 0 else one - one
    if kind == LEAKY_RELU:
        return one if z > 0 else alpha * one
    if kind == SIGMOID:
        return a * (one - a)
    if kind == TANH:
        return one - a * a
    if kind == SOFTPLUS:
        return logistic(z) * one
    return one


@serial
def sigma_prime_z(z, a, kind, alpha):
    """σ'(z) of one element with sigmoid and tanh taken from z (derivations/activations.md#A6).

    σ'(z) = e/(1 + e)² with e = exp(-|z|) for the sigmoid and 4e/(1 + e)² with
    e = exp(-2|z|) for tanh (sech² z): a few ulps for every z. The forms from a = σ(z),
    a(1 - a) and 1 - a², lose relative accuracy as the output saturates (u·e^{|z|} and
    u·e^{2|z|}/4: 1e-3 for the sigmoid at z = 30, 4 % for tanh at z = 18, and 0 for
    tanh from z ≈ 19.1 on, where tanh z rounds to 1). The reference build, and so the
    oracle, uses this (:data:`SIGMA_PRIME_FROM`); :func:`sigma_prime` (from a,
    :data:`SIGMA_PRIME_FROM_FAST`) stays for the fast forms and the trainer's fast path.
    """
    if kind == SIGMOID:
        e = math.exp(-abs(z))
        return e / ((1 + e) * (1 + e))
    if kind == TANH:
        e = math.exp(-2 * abs(z))
        return 4 * e / ((1 + e) * (1 + e))
    return sigma_prime(z, a, kind, alpha)


# ------------------------------------------------ the fast build's σ (vectorizable)
@intrinsic
def _pow2_neg(typingctx, k):
    """2^-k for an int64 0 <= k <= 1022, from the bits of a binary64 (biased exponent
    1023 − k, zero mantissa): a shift and a bitcast, which vectorize."""
    sig = numba.types.float64(numba.types.int64)

    def codegen(context, builder, signature, args):
        i64 = llvm_ir.IntType(64)
        bits = builder.shl(builder.sub(llvm_ir.Constant(i64, 1023), args[0]), llvm_ir.Constant(i64, 52))
        return builder.bitcast(bits, llvm_ir.DoubleType())

    return sig, codegen


#: expm1(t)/t = Σ_m t^m/(m+1)! to t^12, economized to degree 10 on |t| <= ln2/2 by
#: dropping its Chebyshev terms T_11 and T_12 (they add < 2e-17 relative)
_EXPM1_C = (1.0, 0.5000000000000006, 0.1666666666666668, 0.04166666666657331, 0.008333333333319624,
            0.0013888888932414932, 0.00019841269889970308, 2.4801504473176566e-05, 2.75572410293324e-06,
            2.7626277680010253e-07, 2.5109975621266357e-08)


@fastinline
def _tanh_fast(z):
    """tanh z (eq. A5) as −sign(z) expm1(−2|z|) / (2 + expm1(−2|z|)), plain arithmetic so
    that loops calling it vectorize (numba has no SVML here, ``math.tanh`` is a scalar
    libm call). y = 2|z| = k ln 2 + r, |r| <= ln2/2 (ln 2 in fdlibm's two parts);
    expm1(−r) = t·P(t) with P the degree-10 polynomial :data:`_EXPM1_C` by Estrin's
    scheme; e^{−y} − 1 = 2^{−k} expm1(−r) + (2^{−k} − 1). Within 3 ulp of ``numpy.tanh``
    in float64 (tests/test_fast_forms.py); |z| > 20 gives ±1. The fast build's only tanh.
    """
    c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10 = _EXPM1_C
    y = min(2.0 * abs(np.float64(z)), 40.0)
    ki = np.int32(y * 1.4426950408889634 + 0.5)  # y >= 0: truncation rounds
    k = np.float64(ki)
    t = -((y - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10)
    t2 = t * t
    t4 = t2 * t2
    q0 = (c0 + c1 * t) + t2 * (c2 + c3 * t)
    q1 = (c4 + c5 * t) + t2 * (c6 + c7 * t)
    q2 = (c8 + c9 * t) + t2 * c10
    em1 = t * (q0 + t4 * (q1 + t4 * q2))
    s = _pow2_neg(np.int64(ki))
    e = s * em1 + (s - 1.0)
    return math.copysign(-e / (2.0 + e), z)


# inlined copies of σ and σ' for the fast forms (own cache entries: numba's cache key
# ignores compile flags, and the exact build must never load these)
_sigma_inline = fastinline(renamed(sigma.py_func, "__fast"))
_sigma_prime_inline = fastinline(renamed(sigma_prime.py_func, "__fast"))


@fastrow
def activate_row(z, a, kind, alpha):
    """a_n = σ(z_n) along one row (eq. A0), the branch on ``kind`` outside the loop so that
    the loop vectorizes; tanh by :func:`_tanh_fast`. ``a`` may be ``z`` (in place)."""
    if kind == TANH:
        for n in range(z.shape[0]):
            a[n] = _tanh_fast(z[n])
    elif kind == RELU:
        for n in range(z.shape[0]):
            a[n] = max(z[n], z[n] - z[n])
    elif kind == IDENTITY:
        for n in range(z.shape[0]):
            a[n] = z[n]
    else:
        for n in range(z.shape[0]):
            a[n] = _sigma_inline(z[n], kind, alpha)


@fastinline
def hadamard_run(d, z, a, kind, alpha, h):
    """h_n = d_n σ'(z_n, a_n) for one kind, returns Σ_n h_n: D2.13 and D2.10 along one row, as
    derivations/dense.md#D2.14 fuses them (``h`` may be ``d``). Called with a constant ``kind`` (:func:`hadamard_row`, pooling's P8), σ' folds to
    its one branch and the loop vectorizes."""
    acc = h.dtype.type(0)
    for n in range(h.shape[0]):
        v = d[n] * _sigma_prime_inline(z[n], a[n], kind, alpha)
        h[n] = v
        acc += v
    return acc


@fastinline
def row_sum(h):
    """Σ_n h_n along one row, vectorized: the fast forms' sum of D2.10 (derivations/dense.md#D2.10), and of per-sample loss terms."""
    acc = h.dtype.type(0)
    for n in range(h.shape[0]):
        acc += h[n]
    return acc


@fastrow
def hadamard_row(d, z, a, kind, alpha, h):
    """h_n = d_n σ'(z_n) along one row and its sum Σ_n h_n: derivations/dense.md#D2.14 on one row
    (σ' from z or a as :data:`SIGMA_PRIME_FROM` declares, A6): the branch on ``kind`` outside the loop, each
    branch calling the one σ' with a constant kind. ``h`` may be ``d`` (in place)."""
    if kind == RELU:
        return hadamard_run(d, z, a, RELU, alpha, h)
    if kind == TANH:
        return hadamard_run(d, z, a, TANH, alpha, h)
    if kind == SIGMOID:
        return hadamard_run(d, z, a, SIGMOID, alpha, h)
    if kind == IDENTITY:
        return hadamard_run(d, z, a, IDENTITY, alpha, h)
    if kind == LEAKY_RELU:
        return hadamard_run(d, z, a, LEAKY_RELU, alpha, h)
    return hadamard_run(d, z, a, kind, alpha, h)


@fastinline
def sigma_prime_inlined(z, a, kind, alpha):
    """σ'(z) of one element for the fast forms: :func:`sigma_prime` inlined (derivations/activations.md#A6)."""
    return _sigma_prime_inline(z, a, kind, alpha)


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


def _logistic_numpy(Z):
    """1/(1 + e^{-Z}) elementwise without overflow (derivations/activations.md#A4b)."""
    e = np.exp(-np.abs(Z))
    return np.where(Z >= 0, 1 / (1 + e), e / (1 + e))


def activation_numpy(Z, kind, alpha, A):
    """A = σ(Z), vectorized. derivations/activations.md#A0"""
    if kind == RELU:
        np.maximum(Z, 0, out=A)
    elif kind == LEAKY_RELU:
        np.copyto(A, np.where(Z > 0, Z, alpha * Z))
    elif kind == SIGMOID:
        np.copyto(A, _logistic_numpy(Z))
    elif kind == TANH:
        np.tanh(Z, out=A)
    elif kind == SOFTPLUS:
        np.logaddexp(0, Z, out=A)
    else:
        np.copyto(A, Z)
    return A


@fastform
def activation_fast(Z, kind, alpha, A):
    """A_in = σ(Z_in), ``prange`` over rows i, each row one vectorized sweep (tanh by the
    polynomial form, 3 ulp). derivations/activations.md#A0

    Performance contract: no allocation, one pass over Z, inner loop over n unit-stride.
    """
    S, N = Z.shape
    for i in prange(S):
        activate_row(Z[i], A[i], kind, alpha)
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


@fastform
def activation_grad_fast(Z, A, kind, alpha, dsig):
    """dsig_in = σ'(Z_in) from Z or A as :data:`SIGMA_PRIME_FROM_FAST` declares, ``prange`` over rows i. derivations/activations.md#A6

    Performance contract: no allocation, inner loop over n unit-stride.
    """
    S, N = Z.shape
    for i in prange(S):
        for n in range(N):
            dsig[i, n] = sigma_prime_inlined(Z[i, n], A[i, n], kind, alpha)
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
    elif kind == SOFTPLUS:
        np.copyto(dsig, _logistic_numpy(Z))
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
