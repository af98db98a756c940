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
:class:`indexnet.optim.SGD` is applied by the same kernels (fused update). Smaller
networks (seed 003's 1-16-16-1) run the whole step — forward, backward and, for
:class:`indexnet.optim.SGD`, the update — in one serial compiled call, because for them
the cost of entering a kernel (about a microsecond) and of waking threads exceeds the
arithmetic.

Equality: results agree with the generic path (fast engine) to rounding: the sums are
reassociated (fastmath), never reordered beyond that. ``tests/test_fastpath.py`` checks
loss and every gradient within rtol 1e-4 (float32) / 1e-10 (float64), relative to the
largest magnitude of each array.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from indexnet._jit import renamed
from indexnet.kernels.activations import CODES, IDENTITY
from indexnet.kernels.tiled import (SHORT_BATCH, activate, gemm_nt, gemm_tn, q_tile, sigma_fast as sigma,
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
@tiled_serial
def _small_forward(W, A_prev, b, kind, alpha, Z):
    """Z_in = σ(Σ_j W_ij A_jn + b_i), serial, the sum over j as unit-stride axpys over n."""
    S, Sp = W.shape
    N = A_prev.shape[1]
    for i in range(S):
        row = Z[i]
        for n in range(N):
            row[n] = b[i]
        for j in range(Sp):
            w = W[i, j]
            a = A_prev[j]
            for n in range(N):
                row[n] += w * a[n]
    activate(Z, 0, S, 0, N, kind, alpha)


@tiled_serial
def _small_backward(W, H, A_prev, dW, db, D_prev, need_prev):
    """∂J/∂W = H Aᵗ, ∂J/∂b = H J_N and Δ^(l-1) = Wᵗ H, serial (eqs. D2.5, D2.10, D2.25)."""
    S, Sp = W.shape
    N = H.shape[1]
    for i in range(S):
        h = H[i]
        acc = H.dtype.type(0)
        for n in range(N):
            acc += h[n]
        db[i] = acc
        for j in range(Sp):
            a = A_prev[j]
            acc = H.dtype.type(0)
            for n in range(N):
                acc += h[n] * a[n]
            dW[i, j] = acc
    if need_prev:
        for j in range(Sp):
            d = D_prev[j]
            for n in range(N):
                d[n] = 0
        for i in range(S):
            h = H[i]
            for j in range(Sp):
                w = W[i, j]
                d = D_prev[j]
                for n in range(N):
                    d[n] += w * h[n]


@tiled_serial
def small_step(X, Y, Ws, bs, dWs, dbs, As, Hs, Ds, kinds, alphas, code, scale, per_sample, lr, decays):
    """One whole step of a small dense network in one serial call; returns J.

    ``As[l]`` receives A^(l+1), except ``As[L-1]`` which keeps Z^(L); the output pass
    writes A^(L) into ``Ds[L-1]`` (unused otherwise). ``Hs[l]`` receives H^(l+1) and
    ``Ds[l-1]`` the scratch Δ^(l). When ``lr`` > 0 the SGD update
    θ ← θ − η (g + λθ) (eq. O8) follows, with λ = ``decays[l]`` for weights, 0 for biases.
    """
    L = len(Ws)
    for l in range(L):
        A_prev = X if l == 0 else As[l - 1]
        kind = kinds[l] if l < L - 1 else IDENTITY
        _small_forward(Ws[l], A_prev, bs[l], kind, alphas[l], As[l])
    Zl = As[L - 1]
    N = Zl.shape[1]
    total = Zl.dtype.type(0)
    for n in range(N):
        total += _output_column(Zl, Y, Ds[L - 1], Hs[L - 1], n, code, kinds[L - 1], alphas[L - 1], scale)
    J = total * scale if code == SQUARED else total / N
    for l in range(L - 1, -1, -1):
        A_prev = X if l == 0 else As[l - 1]
        _small_backward(Ws[l], Hs[l], A_prev, dWs[l], dbs[l], Ds[l - 1] if l > 0 else Ds[0], l > 0)
        if l > 0:
            D = Ds[l - 1]
            A = As[l - 1]
            H = Hs[l - 1]
            S, M = D.shape
            for i in range(S):
                for n in range(M):
                    a = A[i, n]
                    H[i, n] = D[i, n] * sigma_prime(a, a, kinds[l - 1], alphas[l - 1])
    if lr > 0:
        for l in range(L):
            W = Ws[l].reshape(-1)
            g = dWs[l].reshape(-1)
            lam = W.dtype.type(decays[l])
            eta = W.dtype.type(lr)
            for k in range(W.shape[0]):
                W[k] = W[k] - eta * (g[k] + lam * W[k])
            b = bs[l]
            gb = dbs[l]
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
    """Every array one step writes, allocated once per batch size."""

    def __init__(self, net, N: int):
        dt = net.dtype
        sizes = [net.input_shape[0]] + [layer.units for layer in net.layers]
        self.N = N
        self.A = [np.empty((s, N), dt) for s in sizes[1:]]       # A^(l) (Z^(L) for the last)
        self.A_out = np.empty((sizes[-1], N), dt)               # A^(L)
        self.H = [np.empty((s, N), dt) for s in sizes[1:]]
        self.D = [np.empty((s, N), dt) for s in sizes[1:]]      # Δ^(l), scratch
        self.AT = [np.empty((N, s), dt) for s in sizes[:-1]]    # A^(l-1)ᵗ
        self.HT = [np.empty((N, s), dt) for s in sizes[1:]]     # H^(l)ᵗ
        self.WT = [np.empty((layer_in, layer_out), dt) for layer_in, layer_out in zip(sizes[:-1], sizes[1:])]
        self.per_sample = np.empty(N, dt)
        self.empty = np.zeros(0, dt)
        self.args = None  # the small regime's argument tuples


def make_fast_step(net, optimizer, decay_mask=None):
    """``step(X, Y) -> J`` for a dense-only network, or None when :func:`supports` is False.

    The step writes ∂J/∂θ into preallocated arrays and calls ``optimizer.step`` (or, for a
    small network with :class:`indexnet.optim.SGD` at its own learning rate, applies
    θ ← θ − η(g + λθ) in the same compiled call and advances ``optimizer.t``). The
    network's parameter arrays are updated in place and must stay the same objects
    (``Network.set_flat_params`` writes into them, as the optimisers do).
    ``step.grads`` is the list of gradient arrays of the last step, in the order of the
    trainer's flat parameter list; ``step.regime`` is ``"small"`` or ``"tiled"``.
    """
    if not supports(net):
        return None
    from indexnet.train_step import decay_mask as _mask, flat_param_list

    code = _output_code(net)
    mask = _mask(net) if decay_mask is None else list(decay_mask)
    params = flat_param_list(net)
    L = len(net.layers)
    kinds = tuple(CODES.get(layer.activation, IDENTITY) for layer in net.layers)
    alphas = tuple(float(layer.alpha) for layer in net.layers)
    grads = [np.empty_like(p) for p in params]
    dWs, dbs = grads[0::2], grads[1::2]
    work = max(layer.units * s for layer, s in zip(net.layers, [net.input_shape[0]] + [la.units for la in net.layers]))
    state = {"bufs": {}, "scale": {}}

    def buffers(N):
        """The buffers of batch size N; a few sizes are kept (an epoch's shorter last batch)."""
        bufs = state["bufs"]
        if N not in bufs:
            if len(bufs) >= 4:
                bufs.pop(next(iter(bufs)))
            bufs[N] = _Buffers(net, N)
            state["scale"][N] = net.loss_fn.scale(N) if net.loss_fn.squared else 1.0
        return bufs[N]

    fused_sgd = type(optimizer).__name__ == "SGD" and hasattr(optimizer, "weight_decay")

    def step_small(X, Y):
        N = X.shape[1]
        B = buffers(N)
        if B.args is None:  # the argument tuples, built once per batch size
            decays = tuple(float(optimizer.weight_decay) if m else 0.0 for m in mask[0::2]) \
                if fused_sgd else (0.0,) * L
            B.args = (tuple(p[0] for p in net.params), tuple(p[1] for p in net.params), tuple(dWs),
                      tuple(dbs), tuple(B.A), tuple(B.H), tuple(B.D), kinds, alphas, code, state["scale"][N],
                      B.per_sample, decays)
        a = B.args
        if fused_sgd:
            J = small_step(X, Y, *a[:12], float(optimizer.lr), a[12])
            optimizer.t += 1
        else:
            J = small_step(X, Y, *a[:12], 0.0, a[12])
            optimizer.step(params, grads, mask)
        return float(J)

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

    def step(X, Y):
        return (step_tiled if regime(X.shape[1]) == "tiled" else step_small)(X, Y)

    step.grads = grads
    step.regime = regime
    step.buffers = buffers
    return step
