"""The fast engine's whole-step composer for convolutional networks: the kernels' own fast forms, called in order.

:func:`make_conv_step` returns ``step(X, Y) -> J`` for a network of convolution, max-pool,
flatten and dense layers whose loss has a fused output pass. It computes what
``Network.backward(X, Y, "fast", input_grad=False)`` followed by ``optimizer.step``
computes, by calling the ``_fast`` forms of :mod:`indexnet.kernels.conv2d`,
:mod:`indexnet.kernels.pooling`, :mod:`indexnet.kernels.dense`,
:mod:`indexnet.kernels.losses` and the fast build of :mod:`indexnet.kernels.optim` (each
the kernel of a numbered equation; none is written here) on a :class:`ConvWorkspace`
allocated once per batch size:

* forward: convolution and σ in one pass (conv2d.md C12), max-pool (pooling.md P2), the
  flatten as a view (P6), dense layers by D1.5 (D1.4 for the output layer);
* output: L10 / L11 / L12, A^(L), J and H^(L) in one pass;
* backward: dense layers by D2.25, D2.14 and D2.5; a max-pool over a convolution routes
  its H straight into that convolution's H and bias gradient (P8: P3, D2.13 and C8 in
  one pass per channel), any other max-pool by P3; a convolution by C9 (with the old K,
  through C10's framed G) and C7;
* update: O8 (the fast build of ``optim.sgd_step``, serial: the parameters are small) for
  :class:`indexnet.nn.optim.SGD`, else the optimiser's own ``step`` on the gradients.

Convolutions, pools and their gradients run in parallel (``prange`` over output rows or
channels); the small dense tail runs each operation in parallel only when its work
reaches ``fastpath.PARALLEL_OP`` (as :mod:`indexnet.train.fastpath` does).
"""
from __future__ import annotations

import numpy as np

from indexnet._jit import ELEMENT_WORK
from indexnet.kernels import conv2d, dense, losses, pooling
from indexnet.kernels.activations import CODES, IDENTITY, activation_grad_fast
from indexnet.nn.layers.conv import framed_shape, padded_shape
from indexnet.nn.optim import decay_mask as _mask, flat_param_list, step_trusted
from indexnet.train.fastpath import SIGMOID_BCE, SOFTMAX_CE, _output_code, _pick, _sgd_step_s

KINDS = ("conv2d", "maxpool2d", "flatten", "dense")


class ConvWorkspace:
    """Every array one step of a convolutional network writes, allocated once per batch size N.

    Per layer l = 1..L (list position l-1), shaped like A^(l) with N last: ``Z``, ``A``
    (a max-pool's A is its Z; a flatten's are views of its input's), ``H`` = ∂J/∂Z for
    layers with parameters, ``D`` = Δ^(l) = ∂J/∂A^(l) for the layers below the output (a
    flatten's Δ is a view of its input's Δ, so the dense layer above writes the pool's
    Δ directly), ``arg`` the max-pool winners, ``P`` the padded input of a convolution
    (C4), ``G`` the framed H of a convolution that passes its gradient on (C10), ``AT``
    the packing buffer of a dense layer (N × S_{l-1}); ``per_sample`` the N loss terms.
    """

    def __init__(self, net, N: int):
        dt = net.dtype
        L = len(net.layers)
        shapes = [tuple(s) + (N,) for s in net.shapes]  # shapes[l] = A^(l)'s, l = 0..L
        self.N = N
        self.Z, self.A, self.H, self.D = [None] * L, [None] * L, [None] * L, [None] * L
        self.arg, self.P, self.G, self.AT = [None] * L, [None] * L, [None] * L, [None] * L
        for l, layer in enumerate(net.layers):
            kind, out = layer.kind, shapes[l + 1]
            if kind == "flatten":
                self.Z[l] = self.A[l] = self.A[l - 1].reshape(out) if l else None
                if l and self.D[l - 1] is not None:
                    self.D[l] = self.D[l - 1].reshape(out)
                continue
            self.Z[l] = np.zeros(out, dt)
            self.A[l] = self.Z[l] if kind == "maxpool2d" else np.zeros(out, dt)
            if l < L - 1:
                self.D[l] = np.zeros(out, dt)
            if kind == "maxpool2d":
                self.arg[l] = np.zeros(out, np.int8 if layer.size ** 2 <= 127 else np.int64)  # taps u·k + v
            elif kind == "conv2d":
                self.H[l] = np.zeros(out, dt)
                self.P[l] = np.zeros(padded_shape(shapes[l], layer.pad), dt)
                if l > 0:
                    self.G[l] = np.zeros(framed_shape(net.params[l][0].shape, shapes[l], layer.pad), dt)
            else:  # dense
                self.H[l] = np.zeros(out, dt)
                self.AT[l] = np.zeros((N, int(np.prod(shapes[l][:-1]))), dt)
        self.per_sample = np.zeros(N, dt)


def supports(net) -> bool:
    """True when the network has a convolution, every layer is a convolution, max-pool,
    flatten or dense layer with an elementwise hidden activation, and the loss has a fused
    output pass (softmax + CE, sigmoid + BCE, squared errors) on a dense output layer."""
    kinds = [getattr(layer, "kind", None) for layer in net.layers]
    if "conv2d" not in kinds or any(k not in KINDS for k in kinds) or kinds[-1] != "dense":
        return False
    if any(getattr(layer, "activation", None) == "softmax" for layer in net.layers[:-1]):
        return False
    return _output_code(net) is not None


def make_conv_step(net, optimizer, decay_mask=None):
    """``step(X, Y) -> J`` for a convolutional network, or None when :func:`supports` is False.

    The step updates the network's parameter arrays in place. With
    :class:`indexnet.nn.optim.SGD` it applies O8 (weight decay where the mask says) and
    advances ``optimizer.t``; any other optimiser gets the gradients and its own
    ``step``. ``step.gradients(X, Y) -> (J, grads)`` computes J and the gradients (in the
    trainer's flat parameter order) without updating; ``step.sync()`` does nothing (the
    parameters are always the network's own arrays).
    """
    if not supports(net):
        return None
    code = _output_code(net)
    mask = _mask(net) if decay_mask is None else list(decay_mask)
    params = flat_param_list(net)
    grads = [np.zeros_like(p) for p in params]
    layer_grads, k = [], 0
    for p in net.params:
        layer_grads.append(grads[k:k + len(p)])
        k += len(p)
    layers = net.layers
    L = len(layers)
    kinds = [CODES.get(getattr(layer, "activation", "identity"), IDENTITY) for layer in layers]
    alphas = [float(getattr(layer, "alpha", 0.0)) for layer in layers]
    sgd = type(optimizer).__name__ == "SGD" and hasattr(optimizer, "weight_decay")
    workspaces = {}

    def workspace(N):
        if N not in workspaces:
            if len(workspaces) >= 4:
                workspaces.pop(next(iter(workspaces)))
            workspaces[N] = ConvWorkspace(net, N)
        return workspaces[N]

    def forward(X, B):
        A = X
        for l, layer in enumerate(layers):
            kind = layer.kind
            if kind == "conv2d":  # C12
                K, b = net.params[l]
                conv2d.forward_activation_fast(K, A, b, layer.stride, layer.pad, kinds[l], alphas[l], B.Z[l], B.A[l],
                                               B.P[l])
            elif kind == "maxpool2d":  # P2
                pooling.maxpool_forward_fast(A, layer.size, layer.stride, B.Z[l], B.arg[l])
            elif kind == "flatten":  # P6: the workspace's A^(l) is a view of A^(l-1)
                pass
            else:
                W, b = net.params[l]
                A2 = A.reshape(-1, A.shape[-1])  # P6 when a dense layer follows an image layer
                if l == L - 1:  # D1.4 (the output's σ is the loss pass's)
                    _pick(dense.forward_fast, W.size * B.N)(W, A2, b, B.Z[l], B.AT[l])
                else:  # D1.5
                    _pick(dense.forward_activation_fast, W.size * B.N)(W, A2, b, kinds[l], alphas[l], B.Z[l],
                                                                       B.A[l], B.AT[l])
            A = B.A[l]

    def output(Y, B):
        Z, A, H = B.Z[L - 1], B.A[L - 1], B.H[L - 1]
        work = Z.size * ELEMENT_WORK
        if code == SOFTMAX_CE:  # L10
            return _pick(losses.softmax_cross_entropy_fast, work)(Z, Y, A, H, B.per_sample)
        if code == SIGMOID_BCE:  # L11
            return _pick(losses.sigmoid_binary_cross_entropy_fast, work)(Z, Y, A, H, B.per_sample)
        return _pick(losses.squared_error_output_fast, work)(Z, Y, kinds[L - 1], alphas[L - 1],  # L12
                                                             net.loss_fn.scale(B.N), A, H, B.per_sample)

    def backward(X, B):
        have_H = [False] * L
        have_H[L - 1] = True
        for l in range(L - 1, -1, -1):
            layer, kind = layers[l], layers[l].kind
            A_prev = X if l == 0 else B.A[l - 1]
            if kind == "dense":
                W, _ = net.params[l]
                dW, db = layer_grads[l]
                H = B.H[l]
                wwork = W.size * B.N
                if have_H[l]:  # the output layer: ∂J/∂b = Σ_n H (D2.10 as D2.14 with σ' = 1)
                    _pick(dense.hadamard_bias_grad_fast, H.size * ELEMENT_WORK)(H, H, H, IDENTITY, 0.0, H, db)
                else:  # D2.14
                    _pick(dense.hadamard_bias_grad_fast, H.size * ELEMENT_WORK)(B.D[l], B.Z[l], B.A[l], kinds[l], alphas[l], H,
                                                                     db)
                A2 = A_prev.reshape(-1, A_prev.shape[-1])
                if l > 0:  # D2.25 into Δ^(l-1) (a view of the image layer's Δ below a flatten)
                    _pick(dense.input_grad_fast, wwork)(W, H, B.D[l - 1].reshape(A2.shape))
                _pick(dense.weight_grad_fast, wwork)(H, A2, dW, B.AT[l], dense.forward_packs(A2.shape[0], B.N))  # D2.5
            elif kind == "maxpool2d":
                if l == 0:
                    continue
                below = layers[l - 1]
                if below.kind == "conv2d":  # P8 into the convolution's H and ∂J/∂b
                    pooling.maxpool_backward_hadamard_bias_fast(B.D[l], B.arg[l], layer.size, layer.stride,
                                                                B.Z[l - 1], B.A[l - 1], kinds[l - 1],
                                                                alphas[l - 1], B.H[l - 1], layer_grads[l - 1][1])
                    have_H[l - 1] = True
                else:  # P3
                    pooling.maxpool_backward_fast(B.D[l], B.arg[l], layer.size, layer.stride, B.D[l - 1])
            elif kind == "conv2d":
                K, _ = net.params[l]
                dK, db = layer_grads[l]
                H = B.H[l]
                if not have_H[l]:  # D2.14 on the flattened rows would sum per row, so A6, D2.13 and C8
                    H2, D2 = H.reshape(-1, B.N), B.D[l].reshape(-1, B.N)
                    _pick(dense.hadamard_fast, H.size * ELEMENT_WORK)(D2, _sigma_prime(B, l, H2), H2)
                    conv2d.bias_grad_fast(H, db)
                if l > 0:  # C9 (by C10) with the old K
                    conv2d.input_grad_fast(K, H, layer.stride, layer.pad, B.D[l - 1], B.G[l])
                conv2d.kernel_grad_fast(H, A_prev, layer.stride, layer.pad, dK, B.P[l], True)  # C7 (P from C12)

    def _sigma_prime(B, l, out):  # A6 into ``out``
        return _pick(activation_grad_fast, out.size * ELEMENT_WORK)(B.Z[l].reshape(out.shape), B.A[l].reshape(out.shape),
                                                         kinds[l], alphas[l], out)

    def gradients(X, Y):
        """J and ∂J/∂θ (flat parameter order) of one batch, parameters unchanged."""
        B = workspace(X.shape[-1])
        forward(X, B)
        J = output(Y, B)
        backward(X, B)
        return float(J), grads

    def step(X, Y):
        J, _ = gradients(X, Y)
        if sgd:  # O8
            lr, lam = float(optimizer.lr), float(optimizer.weight_decay)
            for p, g, m in zip(params, grads, mask):
                _sgd_step_s(p.reshape(-1), g.reshape(-1), lr, lam if m else 0.0, p.reshape(-1))
            optimizer.t += 1
        else:
            step_trusted(optimizer, params, grads, mask)
        return J

    step.gradients = gradients
    step.grads = grads
    step.sync = lambda: None
    return step
