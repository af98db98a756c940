"""Rounding-error bounds: each formula's own sum, taken with absolute values.

Beside ``derivations/rounding.md``. A bound kernel returns E, an elementwise first-order
bound on |q̂ − q| for one quantity q that a float32 (float16, bfloat16) implementation
computes, given the exact (float64) values of its operands, their own bounds E_x, and the
rounding constants g (γ_n of eq. R2, or its probabilistic twin of eq. R30) chosen by the
caller for the number of terms n of the sum.

Contractions (dense and conv forward and gradients, pooling) call the formula's own
kernel, in the same form, on absolute values: for example the bound of
Z = W A + b J_Nᵗ (eq. R8) is ``dense.forward(|W|, g|A| + E_A, g|b|)``, that is
Σ_j |W_ij| (g |A_jn| + E_A,jn) + g |b_i|. Elementwise bounds (activations, losses,
softmax) have their own small kernels. Every array is float64, samples last, as in the
formula's kernel; every kernel writes its last argument and returns it. ``tiny`` is the
absolute underflow term of eq. R1 per operation, times the number of operations.
"""
import math

import numpy as np
from numba import prange

from indexnet._jit import exact, literal, serial
from indexnet.kernels import conv2d, dense, pooling
from indexnet.kernels.activations import IDENTITY, LEAKY_RELU, RELU, SIGMOID, SOFTPLUS, TANH, logistic


def _ones(a):
    return np.ones_like(a)


# ============================================================ dense contractions (R8, R20-R22)
def dense_forward_bound_literal(W, A_prev, b, E_A, g, tiny, E_Z):
    """E_Z,in = Σ_j |W_ij| (g|A_jn| + E_A,jn) + g|b_i| + tiny, through ``dense.forward_literal``. derivations/rounding.md#R8"""
    dense.forward_literal(np.abs(W), g * np.abs(A_prev) + E_A, g * np.abs(b), E_Z)
    E_Z += tiny
    return E_Z


def dense_forward_bound_loops(W, A_prev, b, E_A, g, tiny, E_Z):
    """E_Z = |W| (g|A| + E_A) + g|b| J_Nᵗ + tiny, through ``dense.forward_loops``. derivations/rounding.md#R8"""
    dense.forward_loops(np.abs(W), g * np.abs(A_prev) + E_A, g * np.abs(b), E_Z)
    E_Z += tiny
    return E_Z


def dense_forward_bound_numpy(W, A_prev, b, E_A, g, tiny, E_Z):
    """E_Z = |W| (g|A| + E_A) + g|b| J_Nᵗ + tiny on BLAS. derivations/rounding.md#R8"""
    dense.forward_numpy(np.abs(W), g * np.abs(A_prev) + E_A, g * np.abs(b), E_Z)
    E_Z += tiny
    return E_Z


def weight_grad_bound_literal(H, A_prev, E_H, E_A, g, tiny, E_dW):
    """E_dW,ij = Σ_n (g|H_in| + E_H,in)|A_jn| + |H_in| E_A,jn + tiny, via ``dense.weight_grad_literal``. derivations/rounding.md#R20"""
    first = g * np.abs(H) + E_H
    dense.weight_grad_literal(first, _ones(first), np.abs(A_prev), E_dW)
    second = dense.weight_grad_literal(np.abs(H), _ones(H), E_A, np.empty_like(E_dW))
    E_dW += second + tiny
    return E_dW


def weight_grad_bound_loops(H, A_prev, E_H, E_A, g, tiny, E_dW):
    """E_dW = (g|H| + E_H)|A|ᵗ + |H| E_Aᵗ + tiny, via ``dense.weight_grad_loops``. derivations/rounding.md#R20"""
    dense.weight_grad_loops(g * np.abs(H) + E_H, np.abs(A_prev), E_dW)
    E_dW += dense.weight_grad_loops(np.abs(H), E_A, np.empty_like(E_dW)) + tiny
    return E_dW


def weight_grad_bound_numpy(H, A_prev, E_H, E_A, g, tiny, E_dW):
    """E_dW = (g|H| + E_H)|A|ᵗ + |H| E_Aᵗ + tiny on BLAS. derivations/rounding.md#R20"""
    dense.weight_grad_numpy(g * np.abs(H) + E_H, np.abs(A_prev), E_dW)
    E_dW += dense.weight_grad_numpy(np.abs(H), E_A, np.empty_like(E_dW)) + tiny
    return E_dW


def bias_grad_bound_literal(H, E_H, g, tiny, E_db):
    """E_db,i = Σ_n (g|H_in| + E_H,in) + tiny, via ``dense.bias_grad_literal``. derivations/rounding.md#R21"""
    first = g * np.abs(H) + E_H
    dense.bias_grad_literal(first, _ones(first), E_db)
    E_db += tiny
    return E_db


def bias_grad_bound_loops(H, E_H, g, tiny, E_db):
    """E_db = (g|H| + E_H) J_N + tiny, via ``dense.bias_grad_loops``. derivations/rounding.md#R21"""
    dense.bias_grad_loops(g * np.abs(H) + E_H, E_db)
    E_db += tiny
    return E_db


def bias_grad_bound_numpy(H, E_H, g, tiny, E_db):
    """E_db = (g|H| + E_H) J_N + tiny. derivations/rounding.md#R21"""
    dense.bias_grad_numpy(g * np.abs(H) + E_H, E_db)
    E_db += tiny
    return E_db


def input_grad_bound_literal(W, H, E_H, g, tiny, E_D):
    """E_Δ,jn = Σ_i |W_ij| (g|H_in| + E_H,in) + tiny, via ``dense.input_grad_literal``. derivations/rounding.md#R22"""
    dense.input_grad_literal(np.abs(W), g * np.abs(H) + E_H, E_D)
    E_D += tiny
    return E_D


def input_grad_bound_loops(W, H, E_H, g, tiny, E_D):
    """E_Δ = |W|ᵗ (g|H| + E_H) + tiny, via ``dense.input_grad_loops``. derivations/rounding.md#R22"""
    dense.input_grad_loops(np.abs(W), g * np.abs(H) + E_H, E_D)
    E_D += tiny
    return E_D


def input_grad_bound_numpy(W, H, E_H, g, tiny, E_D):
    """E_Δ = |W|ᵗ (g|H| + E_H) + tiny on BLAS. derivations/rounding.md#R22"""
    dense.input_grad_numpy(np.abs(W), g * np.abs(H) + E_H, E_D)
    E_D += tiny
    return E_D


# ================================================================= conv contractions (R23-R26)
def conv_forward_bound_literal(K, A_prev, b, E_A, g, stride, pad, tiny, E_Z):
    """E_Z,oijn = Σ_cuv |K_ocuv| (g|A| + E_A)_{c,s·i+u−p,s·j+v−p,n} + g|b_o| + tiny, via ``conv2d.forward_literal``. derivations/rounding.md#R23"""
    conv2d.forward_literal(np.abs(K), g * np.abs(A_prev) + E_A, g * np.abs(b), stride, pad, E_Z)
    E_Z += tiny
    return E_Z


def conv_forward_bound_loops(K, A_prev, b, E_A, g, stride, pad, tiny, E_Z):
    """E_Z = |K| ⋆ (g|A| + E_A) + g|b| + tiny, via ``conv2d.forward_loops``. derivations/rounding.md#R23"""
    conv2d.forward_loops(np.abs(K), g * np.abs(A_prev) + E_A, g * np.abs(b), stride, pad, E_Z)
    E_Z += tiny
    return E_Z


def conv_forward_bound_numpy(K, A_prev, b, E_A, g, stride, pad, tiny, E_Z):
    """E_Z = |K| ⋆ (g|A| + E_A) + g|b| + tiny, via ``conv2d.forward_numpy``. derivations/rounding.md#R23"""
    conv2d.forward_numpy(np.abs(K), g * np.abs(A_prev) + E_A, g * np.abs(b), stride, pad, E_Z)
    E_Z += tiny
    return E_Z


def conv_kernel_grad_bound_literal(H, A_prev, E_H, E_A, g, stride, pad, tiny, E_dK):
    """E_dK = (g|H| + E_H) ⋆ |A| + |H| ⋆ E_A + tiny, via ``conv2d.kernel_grad_literal``. derivations/rounding.md#R24"""
    conv2d.kernel_grad_literal(g * np.abs(H) + E_H, np.abs(A_prev), stride, pad, E_dK)
    E_dK += conv2d.kernel_grad_literal(np.abs(H), E_A, stride, pad, np.empty_like(E_dK)) + tiny
    return E_dK


def conv_kernel_grad_bound_loops(H, A_prev, E_H, E_A, g, stride, pad, tiny, E_dK):
    """E_dK = (g|H| + E_H) ⋆ |A| + |H| ⋆ E_A + tiny, via ``conv2d.kernel_grad_loops``. derivations/rounding.md#R24"""
    conv2d.kernel_grad_loops(g * np.abs(H) + E_H, np.abs(A_prev), stride, pad, E_dK)
    E_dK += conv2d.kernel_grad_loops(np.abs(H), E_A, stride, pad, np.empty_like(E_dK)) + tiny
    return E_dK


def conv_kernel_grad_bound_numpy(H, A_prev, E_H, E_A, g, stride, pad, tiny, E_dK):
    """E_dK = (g|H| + E_H) ⋆ |A| + |H| ⋆ E_A + tiny, via ``conv2d.kernel_grad_numpy``. derivations/rounding.md#R24"""
    conv2d.kernel_grad_numpy(g * np.abs(H) + E_H, np.abs(A_prev), stride, pad, E_dK)
    E_dK += conv2d.kernel_grad_numpy(np.abs(H), E_A, stride, pad, np.empty_like(E_dK)) + tiny
    return E_dK


def conv_bias_grad_bound_literal(H, E_H, g, tiny, E_db):
    """E_db,o = Σ_ijn (g|H_oijn| + E_H,oijn) + tiny, via ``conv2d.bias_grad_literal``. derivations/rounding.md#R25"""
    conv2d.bias_grad_literal(g * np.abs(H) + E_H, E_db)
    E_db += tiny
    return E_db


def conv_bias_grad_bound_loops(H, E_H, g, tiny, E_db):
    """E_db,o = Σ_ijn (g|H| + E_H)_oijn + tiny, via ``conv2d.bias_grad_loops``. derivations/rounding.md#R25"""
    conv2d.bias_grad_loops(g * np.abs(H) + E_H, E_db)
    E_db += tiny
    return E_db


def conv_bias_grad_bound_numpy(H, E_H, g, tiny, E_db):
    """E_db,o = Σ_ijn (g|H| + E_H)_oijn + tiny. derivations/rounding.md#R25"""
    conv2d.bias_grad_numpy(g * np.abs(H) + E_H, E_db)
    E_db += tiny
    return E_db


def conv_input_grad_bound_literal(K, H, E_H, g, stride, pad, tiny, E_dX):
    """E_dX,cyxn = Σ_oijuv |K_ocuv| (g|H| + E_H)_oijn δ δ + tiny, via ``conv2d.input_grad_literal``. derivations/rounding.md#R26"""
    conv2d.input_grad_literal(np.abs(K), g * np.abs(H) + E_H, stride, pad, E_dX)
    E_dX += tiny
    return E_dX


def conv_input_grad_bound_loops(K, H, E_H, g, stride, pad, tiny, E_dX):
    """E_dX = full correlation of (g|H| + E_H) with |K| + tiny, via ``conv2d.input_grad_loops``. derivations/rounding.md#R26"""
    conv2d.input_grad_loops(np.abs(K), g * np.abs(H) + E_H, stride, pad, E_dX)
    E_dX += tiny
    return E_dX


def conv_input_grad_bound_numpy(K, H, E_H, g, stride, pad, tiny, E_dX):
    """E_dX = full correlation of (g|H| + E_H) with |K| + tiny, via ``conv2d.input_grad_numpy``. derivations/rounding.md#R26"""
    conv2d.input_grad_numpy(np.abs(K), g * np.abs(H) + E_H, stride, pad, E_dX)
    E_dX += tiny
    return E_dX


# ====================================================================== pooling (R27, R28)
def avgpool_bound_literal(X, E_X, k, stride, g, tiny, E_Z):
    """E_Z,cijn = (Σ_uv (g|X| + E_X)_{c,s·i+u,s·j+v,n}) / k² + tiny, via ``pooling.avgpool_forward_literal``. derivations/rounding.md#R27"""
    pooling.avgpool_forward_literal(g * np.abs(X) + E_X, k, stride, E_Z)
    E_Z += tiny
    return E_Z


def avgpool_bound_loops(X, E_X, k, stride, g, tiny, E_Z):
    """Window means of g|X| + E_X, plus tiny, via ``pooling.avgpool_forward_loops``. derivations/rounding.md#R27"""
    pooling.avgpool_forward_loops(g * np.abs(X) + E_X, k, stride, E_Z)
    E_Z += tiny
    return E_Z


def avgpool_bound_numpy(X, E_X, k, stride, g, tiny, E_Z):
    """Window means of g|X| + E_X, plus tiny, via ``pooling.avgpool_forward_numpy``. derivations/rounding.md#R27"""
    pooling.avgpool_forward_numpy(g * np.abs(X) + E_X, k, stride, E_Z)
    E_Z += tiny
    return E_Z


def avgpool_backward_bound_literal(H, E_H, k, stride, g, tiny, E_dX):
    """E_dX = Σ_ij Σ_uv (g|H| + E_H)_cijn / k² δ δ + tiny, via ``pooling.avgpool_backward_literal``. derivations/rounding.md#R28"""
    pooling.avgpool_backward_literal(g * np.abs(H) + E_H, k, stride, E_dX)
    E_dX += tiny
    return E_dX


def avgpool_backward_bound_loops(H, E_H, k, stride, g, tiny, E_dX):
    """(g|H| + E_H)/k² spread over each window, plus tiny, via ``pooling.avgpool_backward_loops``. derivations/rounding.md#R28"""
    pooling.avgpool_backward_loops(g * np.abs(H) + E_H, k, stride, E_dX)
    E_dX += tiny
    return E_dX


def avgpool_backward_bound_numpy(H, E_H, k, stride, g, tiny, E_dX):
    """(g|H| + E_H)/k² spread over each window, plus tiny, via ``pooling.avgpool_backward_numpy``. derivations/rounding.md#R28"""
    pooling.avgpool_backward_numpy(g * np.abs(H) + E_H, k, stride, E_dX)
    E_dX += tiny
    return E_dX


def maxpool_bound_literal(E_X, k, stride, E_Z):
    """E_Z,cijn = max_uv E_X,{c,s·i+u,s·j+v,n}, via ``pooling.maxpool_forward_literal``. derivations/rounding.md#R29a"""
    return pooling.maxpool_forward_literal(E_X, k, stride, E_Z, np.empty(E_Z.shape, np.int64))


def maxpool_bound_loops(E_X, k, stride, E_Z):
    """E_Z = window maxima of E_X, via ``pooling.maxpool_forward_loops``. derivations/rounding.md#R29a"""
    return pooling.maxpool_forward_loops(E_X, k, stride, E_Z, np.empty(E_Z.shape, np.int64))


def maxpool_bound_numpy(E_X, k, stride, E_Z):
    """E_Z = window maxima of E_X, via ``pooling.maxpool_forward_numpy``. derivations/rounding.md#R29a"""
    return pooling.maxpool_forward_numpy(E_X, k, stride, E_Z, np.empty(E_Z.shape, np.int64))


def maxpool_backward_bound_literal(H, E_H, arg, k, stride, g, tiny, E_dX):
    """E_dX = (g|H| + E_H) routed to each window's winner, plus tiny, via ``pooling.maxpool_backward_literal``. derivations/rounding.md#R29"""
    pooling.maxpool_backward_literal(g * np.abs(H) + E_H, arg, k, stride, E_dX)
    E_dX += tiny
    return E_dX


def maxpool_backward_bound_loops(H, E_H, arg, k, stride, g, tiny, E_dX):
    """E_dX = (g|H| + E_H) routed to each window's winner, plus tiny, via ``pooling.maxpool_backward_loops``. derivations/rounding.md#R29"""
    pooling.maxpool_backward_loops(g * np.abs(H) + E_H, arg, k, stride, E_dX)
    E_dX += tiny
    return E_dX


def maxpool_backward_bound_numpy(H, E_H, arg, k, stride, g, tiny, E_dX):
    """E_dX = (g|H| + E_H) routed to each window's winner, plus tiny, via ``pooling.maxpool_backward_numpy``. derivations/rounding.md#R29"""
    pooling.maxpool_backward_numpy(g * np.abs(H) + E_H, arg, k, stride, E_dX)
    E_dX += tiny
    return E_dX


# ============================================================== elementwise: activations
@serial
def _slope_max(z, a, kind, alpha):
    """max |σ'| over the two sides of a kink; σ'(z) elsewhere (eq. R9)."""
    if kind == RELU or kind == IDENTITY:
        return 1.0
    if kind == LEAKY_RELU:
        return max(1.0, abs(alpha))
    if kind == SIGMOID:
        return a * (1.0 - a)
    if kind == SOFTPLUS:
        return logistic(z)
    return 1.0 - a * a


@serial
def _activation_bound_one(z, a, e_z, kind, alpha, c):
    """E_A = max|σ'| E_Z + c |A| for one element (eq. R9)."""
    return _slope_max(z, a, kind, alpha) * e_z + c * abs(a)


@literal
def activation_bound_literal(Z, A, E_Z, kind, alpha, c, E_A):
    """E_A,in = |σ'(Z_in)| E_Z,in + c |A_in|, element by element. derivations/rounding.md#R9"""
    S, N = Z.shape
    for i in range(S):
        for n in range(N):
            E_A[i, n] = _activation_bound_one(Z[i, n], A[i, n], E_Z[i, n], kind, alpha, c)
    return E_A


@exact
def activation_bound_loops(Z, A, E_Z, kind, alpha, c, E_A):
    """E_A,in = |σ'(Z_in)| E_Z,in + c |A_in|, ``prange`` over rows i. derivations/rounding.md#R9"""
    S, N = Z.shape
    for i in prange(S):
        for n in range(N):
            E_A[i, n] = _activation_bound_one(Z[i, n], A[i, n], E_Z[i, n], kind, alpha, c)
    return E_A


def _slope_max_numpy(Z, A, kind, alpha):
    if kind in (RELU, IDENTITY):
        return np.ones_like(A)
    if kind == LEAKY_RELU:
        return np.full_like(A, max(1.0, abs(alpha)))
    if kind == SIGMOID:
        return A * (1 - A)
    if kind == SOFTPLUS:
        return 0.5 * (1 + np.tanh(Z / 2))
    return 1 - A * A


def activation_bound_numpy(Z, A, E_Z, kind, alpha, c, E_A):
    """E_A = |σ'(Z)| ⊙ E_Z + c |A|, vectorized. derivations/rounding.md#R9"""
    np.copyto(E_A, _slope_max_numpy(Z, A, kind, alpha) * E_Z + c * np.abs(A))
    return E_A


@serial
def _kink_one(z, e_z, kind):
    if kind == RELU or kind == LEAKY_RELU:
        return abs(z) <= e_z
    return False


@literal
def kink_literal(Z, E_Z, kind, mask):
    """mask_in = [|Z_in| ≤ E_Z,in] for ReLU and leaky ReLU, element by element. derivations/rounding.md#R10"""
    S, N = Z.shape
    for i in range(S):
        for n in range(N):
            mask[i, n] = _kink_one(Z[i, n], E_Z[i, n], kind)
    return mask


@exact
def kink_loops(Z, E_Z, kind, mask):
    """mask_in = [|Z_in| ≤ E_Z,in] for ReLU and leaky ReLU, ``prange`` over rows. derivations/rounding.md#R10"""
    S, N = Z.shape
    for i in prange(S):
        for n in range(N):
            mask[i, n] = _kink_one(Z[i, n], E_Z[i, n], kind)
    return mask


def kink_numpy(Z, E_Z, kind, mask):
    """mask = |Z| ≤ E_Z for ReLU and leaky ReLU, else all False. derivations/rounding.md#R10"""
    np.copyto(mask, (np.abs(Z) <= E_Z) if kind in (RELU, LEAKY_RELU) else False)
    return mask


@serial
def _activation_grad_bound_one(z, a, e_z, e_a, kind, u, eps_f):
    if kind == SIGMOID:
        return abs(1.0 - 2.0 * a) * e_a + 2.0 * u * abs(a * (1.0 - a))
    if kind == TANH:
        return 2.0 * abs(a) * e_a + u * (a * a + abs(1.0 - a * a))
    if kind == SOFTPLUS:
        s = logistic(z)
        return s * (1.0 - s) * e_z + (eps_f + 3.0 * u) * s
    return 0.0


@literal
def activation_grad_bound_literal(Z, A, E_Z, E_A, kind, u, eps_f, E_d):
    """E_σ' of σ' = A(1−A) (sigmoid), 1 − A² (tanh) or logistic(Z) (softplus), element by element; 0 for the rest. derivations/rounding.md#R11"""
    S, N = A.shape
    for i in range(S):
        for n in range(N):
            E_d[i, n] = _activation_grad_bound_one(Z[i, n], A[i, n], E_Z[i, n], E_A[i, n], kind, u, eps_f)
    return E_d


@exact
def activation_grad_bound_loops(Z, A, E_Z, E_A, kind, u, eps_f, E_d):
    """E_σ' of σ', ``prange`` over rows. derivations/rounding.md#R11"""
    S, N = A.shape
    for i in prange(S):
        for n in range(N):
            E_d[i, n] = _activation_grad_bound_one(Z[i, n], A[i, n], E_Z[i, n], E_A[i, n], kind, u, eps_f)
    return E_d


def activation_grad_bound_numpy(Z, A, E_Z, E_A, kind, u, eps_f, E_d):
    """E_σ' = |1 − 2A| E_A + 2u|A(1−A)| (sigmoid), 2|A| E_A + u(A² + |1−A²|) (tanh), s(1−s)E_Z + (ε_f + 3u)s with s = logistic(Z) (softplus), else 0. derivations/rounding.md#R11"""
    if kind == SIGMOID:
        np.copyto(E_d, np.abs(1 - 2 * A) * E_A + 2 * u * np.abs(A * (1 - A)))
    elif kind == TANH:
        np.copyto(E_d, 2 * np.abs(A) * E_A + u * (A * A + np.abs(1 - A * A)))
    elif kind == SOFTPLUS:
        s = 0.5 * (1 + np.tanh(Z / 2))
        np.copyto(E_d, s * (1 - s) * E_Z + (eps_f + 3 * u) * s)
    else:
        E_d.fill(0)
    return E_d


@serial
def _hadamard_bound_one(d, s, e_d, e_s, u):
    return abs(s) * e_d + abs(d) * e_s + u * abs(d * s)


@literal
def hadamard_bound_literal(Delta, dsig, E_Delta, E_dsig, u, E_H):
    """E_H,in = |σ'_in| E_Δ,in + |Δ_in| E_σ',in + u|Δ_in σ'_in|, element by element. derivations/rounding.md#R12"""
    S, N = Delta.shape
    for i in range(S):
        for n in range(N):
            E_H[i, n] = _hadamard_bound_one(Delta[i, n], dsig[i, n], E_Delta[i, n], E_dsig[i, n], u)
    return E_H


@exact
def hadamard_bound_loops(Delta, dsig, E_Delta, E_dsig, u, E_H):
    """E_H,in = |σ'_in| E_Δ,in + |Δ_in| E_σ',in + u|Δ_in σ'_in|, ``prange`` over rows. derivations/rounding.md#R12"""
    S, N = Delta.shape
    for i in prange(S):
        for n in range(N):
            E_H[i, n] = _hadamard_bound_one(Delta[i, n], dsig[i, n], E_Delta[i, n], E_dsig[i, n], u)
    return E_H


def hadamard_bound_numpy(Delta, dsig, E_Delta, E_dsig, u, E_H):
    """E_H = |σ'| ⊙ E_Δ + |Δ| ⊙ E_σ' + u|Δ ⊙ σ'|. derivations/rounding.md#R12"""
    np.copyto(E_H, np.abs(dsig) * E_Delta + np.abs(Delta) * E_dsig + u * np.abs(Delta * dsig))
    return E_H


# ====================================================================== softmax (R13, R14)
@literal
def softmax_bound_literal(Z, S, E_Z, u, eps_f, g, E_S):
    """E_S,in = S_in (r_in + Σ_k S_kn r_kn + g), r_kn = E_Z,kn + u|Z_kn − m_n| + ε_f. derivations/rounding.md#R13"""
    K, N = Z.shape
    for n in range(N):
        m = Z[0, n]
        for k in range(1, K):
            m = max(m, Z[k, n])
        mean_r = 0.0
        for k in range(K):
            mean_r += S[k, n] * (E_Z[k, n] + u * abs(Z[k, n] - m) + eps_f)
        for i in range(K):
            E_S[i, n] = S[i, n] * (E_Z[i, n] + u * abs(Z[i, n] - m) + eps_f + mean_r + g)
    return E_S


@exact
def softmax_bound_loops(Z, S, E_Z, u, eps_f, g, E_S):
    """E_S,in = S_in (r_in + Σ_k S_kn r_kn + g), ``prange`` over samples n. derivations/rounding.md#R13"""
    K, N = Z.shape
    for n in prange(N):
        m = Z[0, n]
        for k in range(1, K):
            m = max(m, Z[k, n])
        mean_r = 0.0
        for k in range(K):
            mean_r += S[k, n] * (E_Z[k, n] + u * abs(Z[k, n] - m) + eps_f)
        for i in range(K):
            E_S[i, n] = S[i, n] * (E_Z[i, n] + u * abs(Z[i, n] - m) + eps_f + mean_r + g)
    return E_S


def softmax_bound_numpy(Z, S, E_Z, u, eps_f, g, E_S):
    """E_S = S ⊙ (r + J_K J_Kᵗ(S ⊙ r) + g), r = E_Z + u|Z − m| + ε_f, vectorized. derivations/rounding.md#R13"""
    r = E_Z + u * np.abs(Z - Z.max(axis=0, keepdims=True)) + eps_f
    np.copyto(E_S, S * (r + (S * r).sum(axis=0, keepdims=True) + g))
    return E_S


@literal
def softmax_jvp_bound_literal(S, Delta, E_S, E_Delta, u, g, E_H):
    """E_H,in = E_S,in|Δ_in − d_n| + S_in(E_Δ,in + E_d,n + 2u|Δ_in − d_n|), d_n = Σ_k Δ_kn S_kn. derivations/rounding.md#R14"""
    K, N = S.shape
    for n in range(N):
        d = 0.0
        e_d = 0.0
        for k in range(K):
            d += Delta[k, n] * S[k, n]
            e_d += g * abs(Delta[k, n] * S[k, n]) + S[k, n] * E_Delta[k, n] + abs(Delta[k, n]) * E_S[k, n]
        for i in range(K):
            r = abs(Delta[i, n] - d)
            E_H[i, n] = E_S[i, n] * r + S[i, n] * (E_Delta[i, n] + e_d + 2 * u * r)
    return E_H


@exact
def softmax_jvp_bound_loops(S, Delta, E_S, E_Delta, u, g, E_H):
    """E_H,in = E_S,in|Δ_in − d_n| + S_in(E_Δ,in + E_d,n + 2u|Δ_in − d_n|), ``prange`` over n. derivations/rounding.md#R14"""
    K, N = S.shape
    for n in prange(N):
        d = 0.0
        e_d = 0.0
        for k in range(K):
            d += Delta[k, n] * S[k, n]
            e_d += g * abs(Delta[k, n] * S[k, n]) + S[k, n] * E_Delta[k, n] + abs(Delta[k, n]) * E_S[k, n]
        for i in range(K):
            r = abs(Delta[i, n] - d)
            E_H[i, n] = E_S[i, n] * r + S[i, n] * (E_Delta[i, n] + e_d + 2 * u * r)
    return E_H


def softmax_jvp_bound_numpy(S, Delta, E_S, E_Delta, u, g, E_H):
    """E_H = E_S ⊙ |Δ − d| + S ⊙ (E_Δ + E_d + 2u|Δ − d|), vectorized over samples. derivations/rounding.md#R14"""
    d = (Delta * S).sum(axis=0, keepdims=True)
    e_d = (g * np.abs(Delta * S) + S * E_Delta + np.abs(Delta) * E_S).sum(axis=0, keepdims=True)
    r = np.abs(Delta - d)
    np.copyto(E_H, E_S * r + S * (E_Delta + e_d + 2 * u * r))
    return E_H


# ================================================================ losses: Δ^(L) (R15-R18)
@literal
def squared_error_delta_bound_literal(A, Y, E_A, two_scale, u, E_D):
    """E_Δ,in = 2s(E_A,in + u|Y_in|) + 3u|2s(A_in − Y_in)|, element by element. derivations/rounding.md#R15"""
    S, N = A.shape
    for i in range(S):
        for n in range(N):
            E_D[i, n] = two_scale * (E_A[i, n] + u * abs(Y[i, n])) + 3 * u * abs(two_scale * (A[i, n] - Y[i, n]))
    return E_D


@exact
def squared_error_delta_bound_loops(A, Y, E_A, two_scale, u, E_D):
    """E_Δ,in = 2s(E_A,in + u|Y_in|) + 3u|Δ_in|, ``prange`` over rows. derivations/rounding.md#R15"""
    S, N = A.shape
    for i in prange(S):
        for n in range(N):
            E_D[i, n] = two_scale * (E_A[i, n] + u * abs(Y[i, n])) + 3 * u * abs(two_scale * (A[i, n] - Y[i, n]))
    return E_D


def squared_error_delta_bound_numpy(A, Y, E_A, two_scale, u, E_D):
    """E_Δ = 2s(E_A + u|Y|) + 3u|2s(A − Y)|. derivations/rounding.md#R15"""
    np.copyto(E_D, two_scale * (E_A + u * np.abs(Y)) + 3 * u * np.abs(two_scale * (A - Y)))
    return E_D


@serial
def _ce_delta_bound_one(Z, Y, E_Z, i, n, u, eps_f, g, c):
    """c|Y_in| Σ_k e^{Z_kn − Z_in} (E_Z,kn + E_Z,in + u|Z_kn − Z_in| + ε_f + g) (eq. R16)."""
    if Y[i, n] == 0:
        return 0.0
    acc = 0.0
    for k in range(Z.shape[0]):
        d = Z[k, n] - Z[i, n]
        acc += math.exp(d) * (E_Z[k, n] + E_Z[i, n] + u * abs(d) + eps_f + g)
    return c * abs(Y[i, n]) * acc


@literal
def cross_entropy_delta_bound_literal(Z, Y, E_Z, u, eps_f, g, c, E_D):
    """E_Δ,in = c|Y_in| Σ_k e^{Z_kn − Z_in}(E_Z,kn + E_Z,in + u|Z_kn − Z_in| + ε_f + g), element by element. derivations/rounding.md#R16"""
    K, N = Z.shape
    for i in range(K):
        for n in range(N):
            E_D[i, n] = _ce_delta_bound_one(Z, Y, E_Z, i, n, u, eps_f, g, c)
    return E_D


@exact
def cross_entropy_delta_bound_loops(Z, Y, E_Z, u, eps_f, g, c, E_D):
    """E_Δ,in of the cross-entropy's Δ^(L) from Z, ``prange`` over rows i. derivations/rounding.md#R16"""
    K, N = Z.shape
    for i in prange(K):
        for n in range(N):
            E_D[i, n] = _ce_delta_bound_one(Z, Y, E_Z, i, n, u, eps_f, g, c)
    return E_D


def cross_entropy_delta_bound_numpy(Z, Y, E_Z, u, eps_f, g, c, E_D):
    """E_Δ = c|Y| ⊙ Σ_k e^{Z_k· − Z}(E_Z,k· + E_Z + u|Z_k· − Z| + ε_f + g), vectorized. derivations/rounding.md#R16"""
    D = Z[:, None, :] - Z[None, :, :]  # D[k, i, n] = Z_kn − Z_in
    with np.errstate(over="ignore", invalid="ignore"):
        total = (np.exp(D) * (E_Z[:, None, :] + E_Z[None, :, :] + u * np.abs(D) + eps_f + g)).sum(axis=0)
        np.copyto(E_D, np.where(Y != 0, c * np.abs(Y) * total, 0.0))
    return E_D


@serial
def _bce_delta_bound_one(z, y, e_z, u, eps_f, c):
    """E_Δ of c(−Y(1 + e^{−Z}) + (1−Y)(1 + e^{Z})) for one element (eq. R17); zero factors skipped."""
    acc = 0.0
    if y != 0:
        em = math.exp(-z)
        acc += abs(y) * (em * (e_z + eps_f) + 4 * u * (1 + em) + u * (1 + em))
    if y != 1:
        ep = math.exp(z)
        acc += abs(1 - y) * (ep * (e_z + eps_f) + 4 * u * (1 + ep)) + u * abs(y) * (1 + ep)
    return c * acc


@literal
def binary_cross_entropy_delta_bound_literal(Z, Y, E_Z, u, eps_f, c, E_D):
    """E_Δ,in = c[(|Y|e^{−Z} + |1−Y|e^{Z})(E_Z + ε_f) + 4u(|Y|(1+e^{−Z}) + |1−Y|(1+e^{Z})) + u|Y|(2+e^{Z}+e^{−Z})]. derivations/rounding.md#R17"""
    S, N = Z.shape
    for i in range(S):
        for n in range(N):
            E_D[i, n] = _bce_delta_bound_one(Z[i, n], Y[i, n], E_Z[i, n], u, eps_f, c)
    return E_D


@exact
def binary_cross_entropy_delta_bound_loops(Z, Y, E_Z, u, eps_f, c, E_D):
    """E_Δ of the binary cross-entropy's Δ^(L) from Z, ``prange`` over rows. derivations/rounding.md#R17"""
    S, N = Z.shape
    for i in prange(S):
        for n in range(N):
            E_D[i, n] = _bce_delta_bound_one(Z[i, n], Y[i, n], E_Z[i, n], u, eps_f, c)
    return E_D


def binary_cross_entropy_delta_bound_numpy(Z, Y, E_Z, u, eps_f, c, E_D):
    """E_Δ of the binary cross-entropy's Δ^(L) from Z, vectorized; zero factors skipped. derivations/rounding.md#R17"""
    with np.errstate(over="ignore", invalid="ignore"):
        em, ep = np.exp(-Z), np.exp(Z)
        pos = np.where(Y != 0, np.abs(Y) * (em * (E_Z + eps_f) + 5 * u * (1 + em)), 0.0)
        neg = np.where(Y != 1, np.abs(1 - Y) * (ep * (E_Z + eps_f) + 4 * u * (1 + ep)) + u * np.abs(Y) * (1 + ep), 0.0)
    np.copyto(E_D, c * (pos + neg))
    return E_D


@literal
def fused_output_grad_bound_literal(A, Y, E_A, u, E_H):
    """E_H,in = (E_A,in + u|Y_in| + 3u|A_in − Y_in|)/N, element by element. derivations/rounding.md#R18"""
    S, N = A.shape
    for i in range(S):
        for n in range(N):
            E_H[i, n] = (E_A[i, n] + u * abs(Y[i, n]) + 3 * u * abs(A[i, n] - Y[i, n])) / N
    return E_H


@exact
def fused_output_grad_bound_loops(A, Y, E_A, u, E_H):
    """E_H,in = (E_A,in + u|Y_in| + 3u|A_in − Y_in|)/N, ``prange`` over rows. derivations/rounding.md#R18"""
    S, N = A.shape
    for i in prange(S):
        for n in range(N):
            E_H[i, n] = (E_A[i, n] + u * abs(Y[i, n]) + 3 * u * abs(A[i, n] - Y[i, n])) / N
    return E_H


def fused_output_grad_bound_numpy(A, Y, E_A, u, E_H):
    """E_H = (E_A + u|Y| + 3u|A − Y|)/N. derivations/rounding.md#R18"""
    np.copyto(E_H, (E_A + u * np.abs(Y) + 3 * u * np.abs(A - Y)) / A.shape[1])
    return E_H


# ========================================================== loss values: per-element terms (R19)
@serial
def _loss_term(loss, z, a, y, e_a, e_z, lse, e_lse, u, eps_f, g):
    """One element's share of the bound of J·N (or J/scale): first-order and rounding terms (eq. R19)."""
    if loss == 0:  # squared error: Σ (a − y)², times scale outside
        d = abs(a - y)
        return 2 * d * (e_a + u * abs(y)) + g * d * d
    if loss == 1:  # cross-entropy: −Σ y (z − lse), times 1/N outside
        return abs(y) * (e_z + e_lse + u * abs(z - lse) + g * abs(z - lse))
    # binary cross-entropy: Σ softplus(z) − y z, times 1/N outside
    sp = max(z, 0.0) + math.log1p(math.exp(-abs(z)))
    s = 1.0 / (1.0 + math.exp(-z))
    return abs(s - y) * e_z + (2 * eps_f + u) * sp + u * abs(y * z) + g * (sp + abs(y * z))


@literal
def loss_value_bound_literal(loss, Z, A, Y, E_A, E_Z, lse, E_lse, u, eps_f, g, T):
    """T_in, the share of element (i, n) in the bound of J (E_J = c Σ_in T_in + u|J|), element by element. derivations/rounding.md#R19"""
    S, N = Z.shape
    for i in range(S):
        for n in range(N):
            T[i, n] = _loss_term(loss, Z[i, n], A[i, n], Y[i, n], E_A[i, n], E_Z[i, n], lse[n], E_lse[n], u, eps_f, g)
    return T


@exact
def loss_value_bound_loops(loss, Z, A, Y, E_A, E_Z, lse, E_lse, u, eps_f, g, T):
    """T_in of the loss-value bound, ``prange`` over rows. derivations/rounding.md#R19"""
    S, N = Z.shape
    for i in prange(S):
        for n in range(N):
            T[i, n] = _loss_term(loss, Z[i, n], A[i, n], Y[i, n], E_A[i, n], E_Z[i, n], lse[n], E_lse[n], u, eps_f, g)
    return T


def loss_value_bound_numpy(loss, Z, A, Y, E_A, E_Z, lse, E_lse, u, eps_f, g, T):
    """T of the loss-value bound, vectorized (squared error, cross-entropy, binary cross-entropy). derivations/rounding.md#R19"""
    if loss == 0:
        d = np.abs(A - Y)
        np.copyto(T, 2 * d * (E_A + u * np.abs(Y)) + g * d * d)
    elif loss == 1:
        r = np.abs(Z - lse[None, :])
        np.copyto(T, np.abs(Y) * (E_Z + E_lse[None, :] + (u + g) * r))
    else:
        sp = np.logaddexp(0, Z)
        s = 0.5 * (1 + np.tanh(Z / 2))
        np.copyto(T, np.abs(s - Y) * E_Z + (2 * eps_f + u) * sp + u * np.abs(Y * Z) + g * (sp + np.abs(Y * Z)))
    return T
