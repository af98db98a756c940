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

from indexnet._jit import exact, literal
from indexnet.kernels._delta import kron


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
