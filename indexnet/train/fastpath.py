"""The trainer's fast dense step: fused kernels, preallocated buffers, no allocation per step.

:func:`make_fast_step` returns ``step(X, Y) -> J`` for a network of dense layers only,
computing what ``Network.backward(X, Y, engine, fused=True, input_grad=False)`` followed
by ``optimizer.step`` computes, with the same equations in fewer passes:

* forward (D1.4 + A0): Z^(l) = W^(l) A^(l-1) + b^(l) and A^(l) = σ_l(Z^(l)) in one
  register-blocked sum (:func:`indexnet.kernels.tiled.gemm_nt`), σ applied as each
  block is stored; hidden layers keep only A (σ' is a function of A for every
  elementwise activation here: ReLU/leaky ReLU test A > 0, sigmoid A(1 − A), tanh 1 − A²);
* output (L5/L7, L8/L7, L1-L4 + D2.13): one pass over the samples gives the loss value
  and H^(L) = ∂J/∂Z^(L) — (S − Y)/N for softmax + cross-entropy, (σ(Z) − Y)/N for
  sigmoid + binary cross-entropy, 2·scale·(A − Y) ⊙ σ' for the squared-error losses;
* backward (D2.5, D2.10, D2.25, D2.13): ∂J/∂W = H Aᵗ (tiled; for batches under
  ``tiled.SHORT_BATCH`` the axpy form on Hᵗ and the Aᵗ the forward pass packed),
  ∂J/∂b = H J_N fused with H^(l-1) = (W^(l)ᵗ H^(l)) ⊙ σ'(A^(l-1)).

Two regimes, chosen by size. Networks whose largest layer's weight count × batch
reaches :data:`PARALLEL_WORK` run the tiled kernels, one call each from Python; each
operation uses threads only when its own work reaches :data:`PARALLEL_OP` (else its
serial twin: every parallel region wakes and joins the threads, which costs more than
a small operation, and much more when other processes compete for the cores), and
:class:`indexnet.nn.optim.SGD` is applied by the same kernels (fused update). Smaller
networks (seed 003's 1-16-16-1) run the whole step — forward, backward and, for
:class:`indexnet.nn.optim.SGD`, the update — in one serial compiled call,
:func:`small_step`, because for them the cost of entering a kernel (about a
microsecond) and of waking threads exceeds the arithmetic. That call takes few arguments
(numba unboxes every array argument on every call, about 0.15 µs each, more inside
tuples): all buffers of a batch size are views of one flat array, all gradients views of
another, with an int64 table of offsets (:class:`_Buffers`). Its loops are shaped for
rows of a few dozen samples: four terms per pass over a row (loads and stores, not
multiply-adds, bound one axpy per pass), σ' per activation code outside the loops, and
tanh by :func:`tanh_small`, which is most of the step's arithmetic (1-16-16-1, batch 32:
about 12 µs of arithmetic, of which 4.7 µs tanh, and 2-3 µs of entering the call).

Equality: results agree with the generic path (fast engine) to rounding: the sums are
reassociated (fastmath), never reordered beyond that, and tanh is a polynomial form
within 3 ulp of ``numpy.tanh``. ``tests/test_fastpath.py`` checks
loss and every gradient within rtol 1e-4 (float32) / 1e-10 (float64), relative to the
largest magnitude of each array.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from llvmlite import ir as llvm_ir
from numba.extending import intrinsic

from indexnet._jit import renamed
from indexnet.nn.optim import decay_mask as _mask, flat_param_list
from indexnet.kernels.activations import CODES, IDENTITY, SIGMOID, TANH
from indexnet.kernels.tiled import (SHORT_BATCH, gemm_nt, gemm_tn, inlined, q_tile, sigma_fast as sigma,
                                    sigma_prime_fast as sigma_prime, tiled, tiled_serial, transpose_into)

#: weights × batch at or above which a layer uses the parallel tiled kernels
PARALLEL_WORK = 1 << 18

# output codes of the fused output pass
SOFTMAX_CE, SIGMOID_BCE, SQUARED = 0, 1, 2


# ------------------------------------------------------------------ output and H kernels
@tiled_serial
def _output_column(Z, Y, A, H, n, code, kind, alpha, scale):
    """Loss of sample n and column n of A and H^(L) = ∂J/∂Z^(L) (eqs. L5/L7, L8/L7, L1-L4)."""
    K = Z.shape[0]
    N = Z.shape[1]
    inv_n = Z.dtype.type(1) / N
    loss = Z.dtype.type(0)
    if code == SOFTMAX_CE:
        col = Z[:, n]
        m = col.max()
        total = loss
        for k in range(K):
            A[k, n] = math.exp(col[k] - m)
            total += A[k, n]
        lse = m + math.log(total)
        for k in range(K):
            s = A[k, n] / total
            A[k, n] = s
            H[k, n] = (s - Y[k, n]) * inv_n
            if Y[k, n] != 0:
                loss -= Y[k, n] * (Z[k, n] - lse)
    elif code == SIGMOID_BCE:
        for k in range(K):
            z = Z[k, n]
            a = sigma(z, kind, alpha)
            A[k, n] = a
            H[k, n] = (a - Y[k, n]) * inv_n
            loss += max(z, z - z) + math.log1p(math.exp(-abs(z))) - Y[k, n] * z
    else:
        for k in range(K):
            z = Z[k, n]
            a = sigma(z, kind, alpha)
            A[k, n] = a
            d = a - Y[k, n]
            loss += d * d
            H[k, n] = (2 * scale) * d * sigma_prime(z, a, kind, alpha)
    return loss


@tiled
def output_pass(Z, Y, A, H, code, kind, alpha, scale, per_sample):
    """J and H^(L) from the output layer's Z, ``prange`` over samples n (one column each).

    Returns J: the per-sample terms summed in sample order, times 1/N (cross-entropies)
    or ``scale`` (squared errors), as :mod:`indexnet.kernels.losses` reduces them.
    """
    N = Z.shape[1]
    for n in numba.prange(N):
        per_sample[n] = _output_column(Z, Y, A, H, n, code, kind, alpha, scale)
    total = Z.dtype.type(0)
    for n in range(N):
        total += per_sample[n]
    if code == SQUARED:
        return total * scale
    return total / N


@tiled
def hidden_H(D, A, kind, alpha, H, db):
    """H_in = Δ_in σ'(A_in) and ∂J/∂b_i = Σ_n H_in, ``prange`` over rows i (eqs. D2.13, D2.10)."""
    S, N = D.shape
    for i in numba.prange(S):
        acc = H.dtype.type(0)
        for n in range(N):
            a = A[i, n]
            h = D[i, n] * sigma_prime(a, a, kind, alpha)
            H[i, n] = h
            acc += h
        db[i] = acc


@tiled
def row_sums(H, db):
    """∂J/∂b_i = Σ_n H_in, ``prange`` over i (eq. D2.10)."""
    S, N = H.shape
    for i in numba.prange(S):
        acc = H.dtype.type(0)
        for n in range(N):
            acc += H[i, n]
        db[i] = acc


# ------------------------------------------------------------------ the small-net step
@intrinsic
def _pow2_neg(typingctx, k):
    """2^-k for an int64 0 <= k <= 1022, from the bits of a binary64 (biased exponent
    1023 − k, zero mantissa): a shift and a bitcast, which vectorize, in place of a chain
    of selects."""
    sig = numba.types.float64(numba.types.int64)

    def codegen(context, builder, signature, args):
        i64 = llvm_ir.IntType(64)
        bits = builder.shl(builder.sub(llvm_ir.Constant(i64, 1023), args[0]), llvm_ir.Constant(i64, 52))
        return builder.bitcast(bits, llvm_ir.DoubleType())

    return sig, codegen


#: expm1(t)/t = Σ_m t^m/(m+1)! to t^12 (truncation < 1e-17 relative for |t| <= ln2/2),
#: economized to degree 10 on |t| <= ln2/2 by dropping its Chebyshev terms T_11 and T_12
#: (computed in exact rational arithmetic; they add < 2e-17 relative)
_EXPM1_C = (1.0, 0.5000000000000006, 0.1666666666666668, 0.04166666666657331, 0.008333333333319624,
            0.0013888888932414932, 0.00019841269889970308, 2.4801504473176566e-05, 2.75572410293324e-06,
            2.7626277680010253e-07, 2.5109975621266357e-08)


@inlined
def tanh_small(z):
    """tanh z = −sign(z) expm1(−2|z|) / (2 + expm1(−2|z|)) (eq. A5), the form of
    :func:`indexnet.kernels.tiled.tanh_vec` with fewer instructions per element (tanh is
    most of the arithmetic of a small tanh network's step): the same range reduction
    y = 2|z| = k ln 2 + r, but expm1(t) = t·P(t) with P the degree-10 polynomial
    :data:`_EXPM1_C` (in place of the degree-12 Taylor polynomial) evaluated by Estrin's
    scheme (shorter dependency chains than Horner's), and 2^{-k} from the exponent bits
    (:func:`_pow2_neg`) in place of six selects. Accuracy: within 3 ulp of
    ``numpy.tanh`` in float64, as ``tanh_vec`` (tests/test_fastpath.py).
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
    e = s * em1 + (s - 1.0)  # e^{-y} − 1 = 2^{-k} expm1(−r) + (2^{-k} − 1)
    return math.copysign(-e / (2.0 + e), z)


@tiled_serial
def _view(flat, offset, rows, cols):
    """The (rows, cols) C-ordered block of ``flat`` starting at ``offset`` (a view)."""
    return flat[offset:offset + rows * cols].reshape((rows, cols))


@tiled_serial
def _activate_block(Z, kind, alpha):
    """Z ← σ(Z) in place on a contiguous block (eq. A0), the branch on ``kind`` outside
    the loop so that each loop vectorizes; tanh by :func:`tanh_small`."""
    z = Z.reshape(-1)
    if kind == IDENTITY:
        return
    if kind == TANH:
        for k in range(z.shape[0]):
            z[k] = tanh_small(z[k])
    else:
        for k in range(z.shape[0]):
            z[k] = sigma(z[k], kind, alpha)


@tiled_serial
def _times_sigma_prime(D, A, kind, alpha, H):
    """H = D ⊙ σ'(A) on contiguous blocks (eq. D2.13; σ' from A = σ(Z), valid for every
    kind here since ReLU/leaky ReLU test A > 0), one vectorizable loop per kind."""
    d = D.reshape(-1)
    a = A.reshape(-1)
    h = H.reshape(-1)
    if kind == IDENTITY:
        for k in range(h.shape[0]):
            h[k] = d[k]
    elif kind == TANH:
        for k in range(h.shape[0]):
            h[k] = d[k] * (1 - a[k] * a[k])
    elif kind == SIGMOID:
        for k in range(h.shape[0]):
            h[k] = d[k] * (a[k] * (1 - a[k]))
    else:
        for k in range(h.shape[0]):
            h[k] = d[k] * sigma_prime(a[k], a[k], kind, alpha)


@tiled_serial
def _small_forward(W, A_prev, b, kind, alpha, Z):
    """Z_in = σ(Σ_j W_ij A_jn + b_i) (eqs. D1.4, A0), serial, the sum over j as unit-stride
    axpys over n, four values of j per pass over the row (for these short rows the loads
    and stores of the row, not the multiply-adds, bound the one-j-per-pass form);
    ``Z`` contiguous."""
    S, Sp = W.shape
    N = A_prev.shape[1]
    J4 = Sp - Sp % 4
    for i in range(S):
        row = Z[i]
        for n in range(N):
            row[n] = b[i]
        for j in range(0, J4, 4):
            w0, w1, w2, w3 = W[i, j], W[i, j + 1], W[i, j + 2], W[i, j + 3]
            a0, a1, a2, a3 = A_prev[j], A_prev[j + 1], A_prev[j + 2], A_prev[j + 3]
            for n in range(N):
                row[n] += (w0 * a0[n] + w1 * a1[n]) + (w2 * a2[n] + w3 * a3[n])
        for j in range(J4, Sp):
            w = W[i, j]
            a = A_prev[j]
            for n in range(N):
                row[n] += w * a[n]
    _activate_block(Z, kind, alpha)


@tiled_serial
def _small_backward(W, H, A_prev, dW, db, D_prev, need_prev):
    """∂J/∂W = H Aᵗ, ∂J/∂b = H J_N and Δ^(l-1) = Wᵗ H, serial (eqs. D2.5, D2.10, D2.25);
    Wᵗ H as axpys over n, four values of i per pass over the row of Δ."""
    S, Sp = W.shape
    N = H.shape[1]
    J4 = Sp - Sp % 4
    zero = H.dtype.type(0)
    for i in range(S):
        h = H[i]
        acc = zero
        for n in range(N):
            acc += h[n]
        db[i] = acc
        for j in range(0, J4, 4):  # four sums per pass over h
            a0, a1, a2, a3 = A_prev[j], A_prev[j + 1], A_prev[j + 2], A_prev[j + 3]
            c0, c1, c2, c3 = zero, zero, zero, zero
            for n in range(N):
                c0 += h[n] * a0[n]
                c1 += h[n] * a1[n]
                c2 += h[n] * a2[n]
                c3 += h[n] * a3[n]
            dW[i, j], dW[i, j + 1], dW[i, j + 2], dW[i, j + 3] = c0, c1, c2, c3
        for j in range(J4, Sp):
            a = A_prev[j]
            acc = zero
            for n in range(N):
                acc += h[n] * a[n]
            dW[i, j] = acc
    if need_prev:
        I4 = S - S % 4
        for j in range(Sp):
            d = D_prev[j]
            for n in range(N):
                d[n] = 0
            for i in range(0, I4, 4):
                w0, w1, w2, w3 = W[i, j], W[i + 1, j], W[i + 2, j], W[i + 3, j]
                h0, h1, h2, h3 = H[i], H[i + 1], H[i + 2], H[i + 3]
                for n in range(N):
                    d[n] += (w0 * h0[n] + w1 * h1[n]) + (w2 * h2[n] + w3 * h3[n])
            for i in range(I4, S):
                w = W[i, j]
                h = H[i]
                for n in range(N):
                    d[n] += w * h[n]


# columns of the small step's layout table (one row per layer l = 1..L)
S_IN, S_OUT, KIND, OFF_A, OFF_H, OFF_D, OFF_W, OFF_B = range(8)
# entries of the small step's real parameters: the loss scale, then per layer α_l and λ_l
SCALE, PER_LAYER = 0, 1


@tiled_serial
def small_step(X, Y, lr, Ws, bs, flat, grads, layout, reals, code):
    """One whole step of a small dense network in one serial call; returns J.

    Few arguments, because entering a compiled function costs about 0.15 µs per array
    and more per tuple: every buffer of the batch size lives in ``flat``, every gradient
    in ``grads`` (one array each, see :class:`_Buffers`), and ``layout[l - 1]`` gives
    layer l's sizes S_{l-1}, S_l, its activation code and the offsets (elements) of its
    blocks, from which the views are taken here:

    * ``flat[OFF_A]``: A^(l) (S_l × N), except for l = L, which keeps Z^(L);
    * ``flat[OFF_H]``: H^(l) = ∂J/∂Z^(l) (S_l × N);
    * ``flat[OFF_D]``: the scratch Δ^(l) = W^(l+1)ᵗ H^(l+1) (S_l × N); for l = L, A^(L);
    * ``grads[OFF_W]``, ``grads[OFF_B]``: ∂J/∂W^(l) (S_l × S_{l-1}) and ∂J/∂b^(l) (S_l).

    ``reals`` holds the squared-error ``scale`` and, per layer, α_l (leaky ReLU) and λ_l
    (weight decay of W^(l)) at ``PER_LAYER + 2(l-1)``. When the learning rate ``lr`` > 0
    the SGD update θ ← θ − η (g + λθ) (eq. O8) follows, λ = 0 for biases.
    """
    L = len(Ws)
    N = X.shape[1]
    for l in range(L):  # forward, eqs. D1.4 + A0 (the output layer stores Z^(L))
        S, Sp, kind = layout[l, S_OUT], layout[l, S_IN], layout[l, KIND]
        A_prev = X if l == 0 else _view(flat, layout[l - 1, OFF_A], Sp, N)
        _small_forward(Ws[l], A_prev, bs[l], kind if l < L - 1 else IDENTITY, reals[PER_LAYER + 2 * l],
                       _view(flat, layout[l, OFF_A], S, N))
    K, kind_out = layout[L - 1, S_OUT], layout[L - 1, KIND]
    alpha_out = reals[PER_LAYER + 2 * (L - 1)]
    Z = _view(flat, layout[L - 1, OFF_A], K, N)
    A = _view(flat, layout[L - 1, OFF_D], K, N)
    H = _view(flat, layout[L - 1, OFF_H], K, N)
    scale = Z.dtype.type(reals[SCALE])
    total = Z.dtype.type(0)
    if code == SQUARED:  # J = scale Σ (A − Y)², H^(L) = 2 scale (A − Y) ⊙ σ'(A) (eqs. L1-L4, D2.13)
        A[:] = Z
        _activate_block(A, kind_out, alpha_out)
        for k in range(K):
            for n in range(N):
                d = A[k, n] - Y[k, n]
                total += d * d
                H[k, n] = (2 * scale) * d
        _times_sigma_prime(H, A, kind_out, alpha_out, H)
        J = total * scale
    else:  # softmax + CE or sigmoid + BCE, one sample at a time (eqs. L5/L7, L8/L7)
        for n in range(N):
            total += _output_column(Z, Y, A, H, n, code, kind_out, alpha_out, scale)
        J = total / N
    for l in range(L - 1, -1, -1):  # backward, eqs. D2.5, D2.10, D2.25, D2.13
        S, Sp = layout[l, S_OUT], layout[l, S_IN]
        H = _view(flat, layout[l, OFF_H], S, N)
        dW = _view(grads, layout[l, OFF_W], S, Sp)
        db = grads[layout[l, OFF_B]:layout[l, OFF_B] + S]
        if l == 0:
            _small_backward(Ws[l], H, X, dW, db, H, False)
        else:
            A_prev = _view(flat, layout[l - 1, OFF_A], Sp, N)
            D_prev = _view(flat, layout[l - 1, OFF_D], Sp, N)
            _small_backward(Ws[l], H, A_prev, dW, db, D_prev, True)
            _times_sigma_prime(D_prev, A_prev, layout[l - 1, KIND], reals[PER_LAYER + 2 * (l - 1)],
                               _view(flat, layout[l - 1, OFF_H], Sp, N))
    if lr > 0:  # SGD, eq. O8
        for l in range(L):
            W = Ws[l].reshape(-1)
            g = grads[layout[l, OFF_W]:layout[l, OFF_W] + W.shape[0]]
            lam = W.dtype.type(reals[PER_LAYER + 2 * l + 1])
            eta = W.dtype.type(lr)
            for k in range(W.shape[0]):
                W[k] = W[k] - eta * (g[k] + lam * W[k])
            b = bs[l]
            gb = grads[layout[l, OFF_B]:layout[l, OFF_B] + b.shape[0]]
            for k in range(b.shape[0]):
                b[k] = b[k] - eta * gb[k]
    return J


@tiled
def sgd_update(theta, g, lr, weight_decay):
    """θ_k ← θ_k − η (g_k + λ θ_k) on flat views, ``prange`` over k (eq. O8, as optim.SGD)."""
    eta = theta.dtype.type(lr)
    lam = theta.dtype.type(weight_decay)
    for k in numba.prange(theta.shape[0]):
        theta[k] = theta[k] - eta * (g[k] + lam * theta[k])


def serial_twin(dispatcher):
    """The same source compiled without threads (``prange`` runs as ``range``), under its own
    cache name: for the small operations of a step, where waking threads costs more than
    the arithmetic."""
    return tiled_serial(renamed(dispatcher.py_func, "__serial"))


#: multiply-adds (or elements) at or above which one operation of the tiled regime uses threads
PARALLEL_OP = 1 << 21
_SERIAL = {}


def _pick(kernel, work: int):
    """``kernel`` itself when ``work`` >= :data:`PARALLEL_OP`, else its serial twin."""
    if work >= PARALLEL_OP:
        return kernel
    if kernel not in _SERIAL:
        _SERIAL[kernel] = serial_twin(kernel)
    return _SERIAL[kernel]


# ------------------------------------------------------------------------ the builder
def _output_code(net) -> int | None:
    """The fused output pass for the network's loss and output activation, or None."""
    act = net.layers[-1].activation
    name = net.loss_fn.name
    if name == "cross_entropy" and act == "softmax":
        return SOFTMAX_CE
    if name == "binary_cross_entropy" and act == "sigmoid":
        return SIGMOID_BCE
    if net.loss_fn.squared and act != "softmax":
        return SQUARED
    return None


def supports(net) -> bool:
    """True when every layer is dense with an elementwise hidden activation and the loss
    has a fused output pass (softmax + CE, sigmoid + BCE, squared errors)."""
    if any(getattr(layer, "kind", None) != "dense" for layer in net.layers):
        return False
    if any(layer.activation == "softmax" for layer in net.layers[:-1]):
        return False
    if any(layer.activation == "leaky_relu" and layer.alpha < 0 for layer in net.layers):
        return False
    return _output_code(net) is not None


class _Buffers:
    """Every array one step writes, allocated once per batch size N.

    A^(l), H^(l), Δ^(l) and A^(L) are views of one flat array ``flat``, so that the small
    step passes one array for all of them (entering a compiled function costs per array
    argument). Its blocks, each S_l × N and C-ordered, in this order:

    * ``A[l-1]``: A^(l) for l = 1 … L, except that ``A[L-1]`` holds Z^(L);
    * ``H[l-1]``: H^(l) = ∂J/∂Z^(l) for l = 1 … L;
    * ``D[l-1]``: the scratch Δ^(l) = W^(l+1)ᵗ H^(l+1) for the hidden layers l = 1 … L−1;
    * ``A_out``: A^(L); ``per_sample`` (N values): the tiled output pass's per-sample losses.

    ``layout`` (int64, one row per layer, columns ``S_IN`` … ``OFF_B``) gives the sizes,
    activation code and block offsets for :func:`small_step` (its ``OFF_D`` of layer L is
    ``A_out``'s); ``reals`` its real parameters (the loss scale for N, α_l, λ_l);
    ``args`` the arguments of :func:`small_step` after X, Y and η. The transposes
    ``AT``, ``HT``, ``WT`` are the tiled regime's only.
    """

    def __init__(self, net, N: int, grad_offsets, scale: float, decays):
        dt = net.dtype
        sizes = [net.input_shape[0]] + [layer.units for layer in net.layers]
        L = len(net.layers)
        self.N = N
        rows = 2 * sum(sizes[1:]) + sum(sizes[1:-1]) + sizes[-1] + 1
        self.flat = np.empty(rows * N, dt)
        at = 0

        def take(s):
            """The next S × N block of ``flat`` and its offset."""
            nonlocal at
            at += s * N
            return self.flat[at - s * N:at].reshape(s, N), at - s * N

        self.A, oA = zip(*[take(s) for s in sizes[1:]])
        self.H, oH = zip(*[take(s) for s in sizes[1:]])
        self.D, oD = zip(*[take(s) for s in sizes[1:-1]]) if L > 1 else ((), ())
        self.A_out, o_out = take(sizes[-1])
        self.per_sample = take(1)[0].reshape(N)
        self.layout = np.array([[sizes[l], sizes[l + 1], CODES.get(layer.activation, IDENTITY), oA[l], oH[l],
                                 oD[l] if l < L - 1 else o_out, grad_offsets[2 * l], grad_offsets[2 * l + 1]]
                                for l, layer in enumerate(net.layers)], np.int64)
        self.reals = np.zeros(PER_LAYER + 2 * L)
        self.reals[SCALE] = scale
        self.reals[PER_LAYER::2] = [float(layer.alpha) for layer in net.layers]
        self.reals[PER_LAYER + 1::2] = decays
        self.Ws = tuple(p[0] for p in net.params)  # the network's own arrays, updated in place
        self.bs = tuple(p[1] for p in net.params)
        self.args = None
        self.AT = [np.empty((N, s), dt) for s in sizes[:-1]]    # A^(l-1)ᵗ
        self.HT = [np.empty((N, s), dt) for s in sizes[1:]]     # H^(l)ᵗ
        self.WT = [np.empty((layer_in, layer_out), dt) for layer_in, layer_out in zip(sizes[:-1], sizes[1:])]
        self.empty = np.zeros(0, dt)


def make_fast_step(net, optimizer, decay_mask=None):
    """``step(X, Y) -> J`` for a dense-only network, or None when :func:`supports` is False.

    The step writes ∂J/∂θ into preallocated arrays and calls ``optimizer.step`` (or, for a
    small network with :class:`indexnet.nn.optim.SGD` at its own learning rate, applies
    θ ← θ − η(g + λθ) in the same compiled call and advances ``optimizer.t``). The
    network's parameter arrays are updated in place and must stay the same objects
    (``Network.set_flat_params`` writes into them, as the optimisers do).
    ``step.grads`` is the list of gradient arrays of the last step, in the order of the
    trainer's flat parameter list; ``step.regime`` is ``"small"`` or ``"tiled"``.
    """
    if not supports(net):
        return None
    code = _output_code(net)
    mask = _mask(net) if decay_mask is None else list(decay_mask)
    params = flat_param_list(net)
    L = len(net.layers)
    kinds = tuple(CODES.get(layer.activation, IDENTITY) for layer in net.layers)
    alphas = tuple(float(layer.alpha) for layer in net.layers)
    # the gradients: views of one flat array (the small step passes that one array)
    grad_offsets = np.cumsum([0] + [p.size for p in params])
    grad_flat = np.empty(int(grad_offsets[-1]), net.dtype)
    grads = [grad_flat[o:o + p.size].reshape(p.shape) for o, p in zip(grad_offsets, params)]
    dWs, dbs = grads[0::2], grads[1::2]
    work = max(layer.units * s for layer, s in zip(net.layers, [net.input_shape[0]] + [la.units for la in net.layers]))
    state = {"bufs": {}, "scale": {}}
    fused_sgd = type(optimizer).__name__ == "SGD" and hasattr(optimizer, "weight_decay")

    def buffers(N):
        """The buffers of batch size N; a few sizes are kept (an epoch's shorter last batch)."""
        bufs = state["bufs"]
        if N not in bufs:
            if len(bufs) >= 4:
                bufs.pop(next(iter(bufs)))
            state["scale"][N] = net.loss_fn.scale(N) if net.loss_fn.squared else 1.0
            decays = [float(optimizer.weight_decay) if m and fused_sgd else 0.0 for m in mask[0::2]]
            B = bufs[N] = _Buffers(net, N, grad_offsets, state["scale"][N], decays)
            B.args = (B.Ws, B.bs, B.flat, grad_flat, B.layout, B.reals, code)  # small_step's, after X, Y, η
        return bufs[N]

    def step_tiled(X, Y):
        B = buffers(X.shape[1])
        N = X.shape[1]
        T = numba.get_num_threads()
        for l, (layer, (W, b)) in enumerate(zip(net.layers, net.params)):
            A_prev = X if l == 0 else B.A[l - 1]
            _pick(transpose_into, A_prev.size * 8)(A_prev, B.AT[l])
            kind = IDENTITY if l == L - 1 else kinds[l]
            work = W.size * N
            _pick(gemm_nt, work)(W, B.AT[l], B.A[l], b, kind, alphas[l], q_tile(W.shape[1], W.itemsize),
                                 T if work >= PARALLEL_OP else 1)
        Zl = B.A[L - 1]
        J = _pick(output_pass, Zl.size * 8)(Zl, Y, B.A_out, B.H[L - 1], code, kinds[L - 1], alphas[L - 1],
                                            state["scale"][N], B.per_sample)
        for l in range(L - 1, -1, -1):
            W = net.params[l][0]
            A_prev = X if l == 0 else B.A[l - 1]
            H = B.H[l]
            work = W.size * N
            if l == L - 1:
                _pick(row_sums, H.size * 8)(H, dbs[l])
            _pick(transpose_into, H.size * 8)(H, B.HT[l])
            if N < SHORT_BATCH:  # ∂J/∂W from the packed Hᵗ and Aᵗ (axpy form)
                _pick(gemm_tn, work)(B.HT[l], B.AT[l], dWs[l], T)
            else:
                _pick(gemm_nt, work)(H, A_prev, dWs[l], B.empty, IDENTITY, 0.0, q_tile(N, H.itemsize),
                                     T if work >= PARALLEL_OP else 1)
            if l > 0:
                _pick(transpose_into, W.size * 8)(W, B.WT[l])
                _pick(gemm_nt, work)(B.WT[l], B.HT[l], B.D[l - 1], B.empty, IDENTITY, 0.0,
                                     q_tile(W.shape[0], W.itemsize), T if work >= PARALLEL_OP else 1)
                _pick(hidden_H, B.D[l - 1].size * 8)(B.D[l - 1], B.A[l - 1], kinds[l - 1], alphas[l - 1],
                                                     B.H[l - 1], dbs[l - 1])
        if fused_sgd:
            lr = float(optimizer.lr)
            for p, g, m in zip(params, grads, mask):
                _pick(sgd_update, p.size * 8)(p.reshape(-1), g.reshape(-1), lr,
                                              float(optimizer.weight_decay) if m else 0.0)
            optimizer.t += 1
        else:
            optimizer.step(params, grads, mask)
        return float(J)

    def regime(N):
        return "tiled" if work * N >= PARALLEL_WORK else "small"

    bufs = state["bufs"]

    def step(X, Y):
        N = X.shape[1]
        if work * N >= PARALLEL_WORK:
            return step_tiled(X, Y)
        # the small regime, inline: at a few µs per step, each Python call and lookup shows
        B = bufs.get(N) or buffers(N)
        if fused_sgd:
            J = small_step(X, Y, float(optimizer.lr), *B.args)
            optimizer.t += 1
        else:
            J = small_step(X, Y, 0.0, *B.args)
            optimizer.step(params, grads, mask)
        return float(J)

    step.grads = grads
    step.regime = regime
    step.buffers = buffers
    return step
