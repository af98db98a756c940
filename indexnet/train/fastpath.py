"""The fast engine's whole-step composer for dense networks: the kernels' own fast forms, called in order.

:func:`make_fast_step` returns ``step(X, Y) -> J`` for a network of dense layers whose
loss has a fused output pass. It computes what ``Network.backward(X, Y, "fast",
input_grad=False)`` followed by ``optimizer.step`` computes, by calling the ``_fast``
forms of :mod:`indexnet.kernels.dense` and :mod:`indexnet.kernels.losses` (each the
kernel of a numbered equation; none is written here) on a
:class:`indexnet.nn.network.Workspace` allocated once per batch size:

* forward, D1.5 (or D1.6 for the first layer when at most :data:`SUPPORT_DENSITY` of
  its inputs are nonzero): Z^(l) and A^(l) = σ(Z^(l)) in one pass per layer;
* output, L10 / L11 / L12: A^(L), J and H^(L) in one pass;
* backward, D2.25 then D2.14 (H^(l-1) and ∂J/∂b^(l-1) in one pass), and D2.5, or for
  :class:`indexnet.nn.optim.SGD` the update folded into the weight gradient (D2.6, D2.8),
  after Δ^(l-1) has used the old weights.

The support forms read the first layer's W input-major (Wᵗ). With plain SGD the step keeps W^(1) in that order between
synchronisations: it packs W^(1) into Wᵗ at the first step, updates Wᵗ in place by D2.8,
and writes it back into the network's array when ``step.sync()`` is called (after every
step unless the step was made with ``defer_sync=True``, as the trainer and ``indexnet
bench`` make it; they call ``sync()`` before reading the parameters). Another optimiser
(momentum, Adam: elementwise rules) does the same when the sync is deferred: it updates Wᵗ
from D2.7's input-major gradient, with its state of W^(1) held input-major too, both
turned back by ``sync()`` (before a checkpoint reads the optimiser's state); without a
deferred sync the network's W stays the only copy and Wᵗ is packed at every step.

Two regimes. A network whose largest layer's weights × batch reaches
:data:`PARALLEL_WORK` is run one fast form per call from Python. The products (D1.5,
D2.5-D2.8; D2.25) of every layer run in parallel when the largest weights × batch among
the layers the kernel runs on (all; layers 2..L) reaches :data:`PARALLEL_OP`, else as
serial twins: one build of each kernel per network (and batch size), since every build is a compile of its own on a first run (digits'
10 × 800 output layer would otherwise compile serial twins beside the parallel forms of
its 800 × 64 layer). D2.14, the elementwise pass between the products, takes the
products' build: the threads are awake from the product before them,
and a pass of a few thousand elements already gains from them (D2.14 on 800 × 100
float32: 66 µs serially, 16 µs on 2 threads). The first layer's transpositions (Wᵗ,
Hᵗ) take one build by the size of W^(1). The output pass runs in parallel when its
own work (elements × :data:`indexnet._jit.ELEMENT_WORK`) reaches :data:`PARALLEL_OP`, else
serially (waking threads costs more than a small operation). A smaller network (seed 000's 1-16-16-1) is
run in one serial compiled call, :func:`small_step`, which calls the serial twins of the
same fast forms: at a few microseconds per step, entering a compiled function and waking
threads would dominate, so that call takes only the batch as arrays (borrowed for its
duration, :func:`indexnet._jit.borrowed`: no reference counting of the views it and the
kernels take) and finds the parameters, the gradients, the workspace and its offset table
through one integer, the address of its context table (:func:`step_context`).
"""
from __future__ import annotations

import numba
import numpy as np
from numba.core import types
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array

from indexnet._jit import ELEMENT_WORK, PARALLEL_OP as _PARALLEL_OP, address_view, borrowed, fastserial, serial_twin
from indexnet.kernels import dense, losses, optim
from indexnet.kernels.dense import _axpy_forward
from indexnet.kernels.activations import CODES, IDENTITY
from indexnet.nn.network import KIND, LAYOUT_COLS, OFF_A, OFF_B, OFF_D, OFF_H, OFF_T, OFF_W, OFF_Z, S_IN, S_OUT
from indexnet.nn.optim import decay_mask as _mask, flat_param_list, step_trusted

#: weights × batch of the largest layer at or above which the step runs layer by layer
PARALLEL_WORK = 1 << 18
#: multiply-adds (or elements) at or above which one operation uses threads (:data:`indexnet._jit.PARALLEL_OP`)
PARALLEL_OP = _PARALLEL_OP
#: largest fraction of nonzero inputs for which the first layer sums over the support
#: (D1.6, D2.7, D2.8), decided on the first batch. MNIST's pixels are 19 % nonzero; at
#: that density the support forms take about half the dense forms' time (the sums are
#: bound by reading the rows of Wᵗ and Hᵗ from the L2 cache, not by the multiply-adds),
#: and they break even near 40 %. The digits set (51 %) stays dense.
SUPPORT_DENSITY = 0.3

#: operations per input value that :func:`indexnet.kernels.dense.support_of` does (a count
#: and a branch-free fill: read, compare, two stores): its work for :func:`_pick`
SUPPORT_OF_WORK = 32

# output passes: softmax + CE (L10), sigmoid + BCE (L11), squared errors (L12)
SOFTMAX_CE, SIGMOID_BCE, SQUARED = 0, 1, 2

#: the serial twin of a fast form (one per form and process, compiled on first use)
_twin = serial_twin


def _pick(kernel, work: int):
    """``kernel`` itself when ``work`` >= :data:`PARALLEL_OP`, else its serial twin."""
    return kernel if work >= PARALLEL_OP else _twin(kernel)


# serial twins called from inside small_step (numba resolves them as globals)
_forward_s = _twin(dense.forward_activation_fast)
_weight_grad_s = _twin(dense.weight_grad_fast)
_weight_grad_sgd_s = _twin(dense.weight_grad_sgd_fast)
_input_grad_s = _twin(dense.input_grad_fast)
_hadamard_bias_s = _twin(dense.hadamard_bias_grad_fast)
_hadamard_bias_sgd_s = _twin(dense.hadamard_bias_sgd_fast)
_softmax_ce_s = _twin(losses.softmax_cross_entropy_fast)
_sigmoid_bce_s = _twin(losses.sigmoid_binary_cross_entropy_fast)
_squared_s = _twin(losses.squared_error_output_fast)
_decay_s = _twin(optim.decay_fast)
_sgd_step_s = _twin(optim.sgd_step_loops)  # O8's fast build, serial: the conv path's bias step

# entries of the small step's real parameters: the loss scale, then per layer α_l and λ_l
SCALE, PER_LAYER = 0, 1


@intrinsic
def _block(typingctx, flat, offset, rows, cols):
    """The (rows, cols) C-ordered view of ``flat`` at ``offset``, made from its pointer,
    strides and reference (no bounds check: :func:`_view` does it). numba's ``reshape``
    calls a C helper and costs about 40 ns per view, which at some 20 views per step
    was a tenth of the tiny network's step."""
    if not (isinstance(flat, types.Array) and flat.ndim == 1 and flat.layout == "C"):
        return None
    view = types.Array(flat.dtype, 2, "C")

    def codegen(context, builder, sig, args):
        src = make_array(sig.args[0])(context, builder, args[0])
        off, r, c = (context.cast(builder, v, t, types.intp) for v, t in zip(args[1:], sig.args[1:]))
        out = make_array(view)(context, builder)
        populate_array(out, data=builder.gep(src.data, [off]), shape=[r, c],
                       strides=[builder.mul(c, src.itemsize), src.itemsize], itemsize=src.itemsize,
                       meminfo=src.meminfo, parent=src.parent)
        return impl_ret_borrowed(context, builder, view, out._getvalue())

    return view(flat, offset, rows, cols), codegen


@fastserial
def _view(flat, offset, rows, cols):
    """The (rows, cols) C-ordered block of ``flat`` starting at ``offset`` (a view)."""
    if offset < 0 or rows < 0 or cols < 0 or offset + rows * cols > flat.shape[0]:
        raise IndexError("workspace block out of range")
    return _block(flat, offset, rows, cols)


#: entries of the small step's context table (int64, :func:`step_context`): address and
#: length of θ, of the gradient vector, of the workspace's flat buffer and of the real
#: parameters, then the address and row count of the workspace layout
CTX_THETA, CTX_GRADS, CTX_FLAT, CTX_REALS, CTX_LAYOUT, CTX_SIZE = 0, 2, 4, 6, 8, 10


def step_context(theta, grads, flat, reals, layout):
    """The context table of :func:`small_step` for these buffers (all C-contiguous; θ, the
    gradients and the workspace of one dtype, ``reals`` float64, ``layout`` int64 with the
    workspace layout's columns). The caller keeps the buffers and the table alive while
    the table's address is passed."""
    for name, a in (("theta", theta), ("grads", grads), ("flat", flat), ("reals", reals), ("layout", layout)):
        if not a.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous")
    if not (grads.dtype == flat.dtype == theta.dtype and grads.size == theta.size):
        raise ValueError("theta, grads and flat must share one dtype, grads laid out as theta")
    if reals.dtype != np.float64 or layout.dtype != np.int64 or layout.ndim != 2 or layout.shape[1] != LAYOUT_COLS:
        raise ValueError(f"reals must be float64 and layout an int64 table of {LAYOUT_COLS} columns")
    ctx = np.zeros(CTX_SIZE, np.int64)
    for k, a in ((CTX_THETA, theta), (CTX_GRADS, grads), (CTX_FLAT, flat), (CTX_REALS, reals)):
        ctx[k], ctx[k + 1] = a.ctypes.data, a.size
    ctx[CTX_LAYOUT], ctx[CTX_LAYOUT + 1] = layout.ctypes.data, layout.shape[0]
    return ctx


@fastserial
def small_step(X, Y, lr, context, code):
    """One whole step of a small dense network in one serial call; returns J.

    ``context`` is the address of the step's context table (:func:`step_context`): where
    θ (the network's flat parameter vector, :attr:`indexnet.nn.network.Network.theta`),
    the gradient vector laid out alike, the workspace's flat buffer and layout
    (:class:`indexnet.nn.network.Workspace`: its columns OFF_W and OFF_B locate W^(l) and
    b^(l) in θ and in the gradients) and the real parameters lie. Entering a compiled
    function from Python costs a reference-count owner made and released per array
    argument (about 0.03 µs each) and about 0.4 µs per tuple of arrays, so the long-lived
    buffers come as one integer (:func:`indexnet._jit.address_view`) and only the batch as
    arrays. ``reals`` holds the squared-error scale and per layer α_l (leaky ReLU) and
    λ_l (weight decay of W^(l)). When ``lr`` > 0 the SGD step is folded into the weight
    gradient (D2.6; O16's decay factor 1 − ηλ first) and into the bias sums (D2.15);
    otherwise every gradient is written to ``grads``. The batch arrays are borrowed
    (:func:`indexnet._jit.borrowed`) for the call.
    """
    ctx = address_view(context, CTX_SIZE, np.int64)
    theta = address_view(ctx[CTX_THETA], ctx[CTX_THETA + 1], X)
    grads = address_view(ctx[CTX_GRADS], ctx[CTX_GRADS + 1], X)
    flat = address_view(ctx[CTX_FLAT], ctx[CTX_FLAT + 1], X)
    reals = address_view(ctx[CTX_REALS], ctx[CTX_REALS + 1], np.float64)
    layout = _block(address_view(ctx[CTX_LAYOUT], ctx[CTX_LAYOUT + 1] * LAYOUT_COLS, np.int64), 0,
                    ctx[CTX_LAYOUT + 1], LAYOUT_COLS)
    L = layout.shape[0]
    N = X.shape[1]
    X, Y = borrowed(X), borrowed(Y)
    for l in range(L):  # D1.5; the output layer stores Z (its σ is the output pass's)
        S, Sp = layout[l, S_OUT], layout[l, S_IN]
        A_prev = X if l == 0 else _view(flat, layout[l - 1, OFF_A], Sp, N)
        Z = _view(flat, layout[l, OFF_Z], S, N)
        _forward_s(_view(theta, layout[l, OFF_W], S, Sp), A_prev, theta[layout[l, OFF_B]:layout[l, OFF_B] + S],
                   layout[l, KIND] if l < L - 1 else IDENTITY, reals[PER_LAYER + 2 * l], Z,
                   Z if l == L - 1 else _view(flat, layout[l, OFF_A], S, N), _view(flat, layout[l, OFF_T], N, Sp))
    K = layout[L - 1, S_OUT]
    Z = _view(flat, layout[L - 1, OFF_Z], K, N)
    A = _view(flat, layout[L - 1, OFF_A], K, N)
    H = _view(flat, layout[L - 1, OFF_H], K, N)
    per_sample = flat[flat.shape[0] - N:]
    if code == SOFTMAX_CE:
        J = _softmax_ce_s(Z, Y, A, H, per_sample)
    elif code == SIGMOID_BCE:
        J = _sigmoid_bce_s(Z, Y, A, H, per_sample)
    else:
        J = _squared_s(Z, Y, layout[L - 1, KIND], reals[PER_LAYER + 2 * (L - 1)], reals[SCALE], A, H, per_sample)
    for l in range(L - 1, -1, -1):
        S, Sp = layout[l, S_OUT], layout[l, S_IN]
        W = _view(theta, layout[l, OFF_W], S, Sp)
        b = theta[layout[l, OFF_B]:layout[l, OFF_B] + S]
        H = _view(flat, layout[l, OFF_H], S, N)
        if l == L - 1:  # ∂J/∂b^(L) = Σ_n H^(L): D2.14 with σ' = 1, in place (D2.15 when stepping)
            if lr > 0:
                _hadamard_bias_sgd_s(H, H, H, IDENTITY, 0.0, lr, H, b)
            else:
                _hadamard_bias_s(H, H, H, IDENTITY, 0.0, H, grads[layout[l, OFF_B]:layout[l, OFF_B] + S])
        A_prev = X if l == 0 else _view(flat, layout[l - 1, OFF_A], Sp, N)
        if l > 0:  # D2.25 with the old W, then D2.14 for layer l-1 (D2.15 when stepping: b^(l-1) is read no more)
            D_prev = _view(flat, layout[l - 1, OFF_D], Sp, N)
            _input_grad_s(W, H, D_prev)
            Z_prev, H_prev = _view(flat, layout[l - 1, OFF_Z], Sp, N), _view(flat, layout[l - 1, OFF_H], Sp, N)
            kind, alpha = layout[l - 1, KIND], reals[PER_LAYER + 2 * (l - 1)]
            b_prev = layout[l - 1, OFF_B]
            if lr > 0:
                _hadamard_bias_sgd_s(D_prev, Z_prev, A_prev, kind, alpha, lr, H_prev, theta[b_prev:b_prev + Sp])
            else:
                _hadamard_bias_s(D_prev, Z_prev, A_prev, kind, alpha, H_prev, grads[b_prev:b_prev + Sp])
        AT = _view(flat, layout[l, OFF_T], N, Sp)
        packed = not _axpy_forward(Sp, N)  # the forward left A_prevᵗ in AT
        if lr > 0:  # D2.6 (the biases were stepped by D2.15)
            lam = reals[PER_LAYER + 2 * l + 1]
            if lam != 0:
                _decay_s(W.reshape(-1), lr, lam)  # O16
            _weight_grad_sgd_s(H, A_prev, lr, W, AT, packed)
        else:
            _weight_grad_s(H, A_prev, _view(grads, layout[l, OFF_W], S, Sp), AT, packed)
    return J


# ------------------------------------------------------------------------ the builder
def _output_pass(code, Z, Y, kind, alpha, scale, A, H, per_sample):
    """The fused output pass ``code`` (L10 / L11 / L12) on the output layer's Z: A^(L), H^(L)
    and the per-sample losses written, J returned; threads by its own work (elements ×
    :data:`indexnet._jit.ELEMENT_WORK`)."""
    out_work = Z.size * ELEMENT_WORK
    if code == SOFTMAX_CE:
        return _pick(losses.softmax_cross_entropy_fast, out_work)(Z, Y, A, H, per_sample)
    if code == SIGMOID_BCE:
        return _pick(losses.sigmoid_binary_cross_entropy_fast, out_work)(Z, Y, A, H, per_sample)
    return _pick(losses.squared_error_output_fast, out_work)(Z, Y, kind, alpha, scale, A, H, per_sample)


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
    return _output_code(net) is not None


def make_fast_step(net, optimizer, decay_mask=None, defer_sync: bool = False):
    """``step(X, Y) -> J`` for a dense-only network, or None when :func:`supports` is False.

    The step updates the network's parameter arrays in place (they must stay the same
    objects; ``Network.set_flat_params`` writes into them, as the optimisers do). With
    :class:`indexnet.nn.optim.SGD` the update is folded into the weight gradient
    (D2.6/D2.8) and ``optimizer.t`` advances; any other optimiser gets the gradients and
    its own ``step``. ``step.gradients(X, Y) -> (J, grads)`` computes J and the gradients
    (in the trainer's flat parameter order) without updating; ``step.regime(N)`` says
    ``"small"`` or ``"layers"``; ``step.sync()`` writes parameters (and optimiser state)
    the step holds in another order back into the network's (the optimiser's) arrays (see
    the module docstring; a no-op unless ``defer_sync`` is True and the first layer sums
    over its input's support).
    """
    if not supports(net):
        return None
    code = _output_code(net)
    mask = _mask(net) if decay_mask is None else list(decay_mask)
    params = flat_param_list(net)
    L = len(net.layers)
    kinds = [CODES.get(layer.activation, IDENTITY) for layer in net.layers]
    alphas = [float(layer.alpha) for layer in net.layers]
    grad_flat = np.zeros_like(net.theta)  # laid out as θ (the workspace layout's OFF_W, OFF_B locate both)
    grads = [g for layer in net.like_theta(grad_flat) for g in layer]
    dWs, dbs = grads[0::2], grads[1::2]
    sizes = [net.input_shape[0]] + [layer.units for layer in net.layers]
    work = max(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    input_work = max([a * b for a, b in zip(sizes[1:-1], sizes[2:])], default=0)  # D2.25 runs on layers 2..L
    fused_sgd = type(optimizer).__name__ == "SGD" and hasattr(optimizer, "weight_decay")
    Ws = tuple(p[0] for p in net.params)
    bs = tuple(p[1] for p in net.params)
    state = {"reals": {}, "support": None, "WT": None, "owner": "net", "state_held": False}
    # another optimiser than SGD holds W^(1) input-major too when the sync is deferred: it
    # updates Wᵗ from D2.7's input-major gradient, its state of W^(1) held alike (hold_state)
    hold_other = defer_sync and not fused_sgd
    S1 = Ws[0].shape[0]
    # the first layer's transpositions (Wᵗ, Hᵗ, the optimiser's state) take one build, by the size of W^(1)
    pack_work = Ws[0].size * ELEMENT_WORK

    def reals(N):
        if N not in state["reals"]:
            r = np.zeros(PER_LAYER + 2 * L)
            r[SCALE] = net.loss_fn.scale(N) if net.loss_fn.squared else 1.0
            r[PER_LAYER::2] = alphas
            r[PER_LAYER + 1::2] = [float(optimizer.weight_decay) if m and fused_sgd else 0.0 for m in mask[0::2]]
            state["reals"][N] = r
        return state["reals"][N]

    def use_support(X):
        """Sum the first layer over the support of X (D1.6, D2.7) when at most
        :data:`SUPPORT_DENSITY` of its inputs are nonzero; decided on the first batch (the
        density of a data set's inputs does not change)."""
        if state["support"] is None:
            state["support"] = bool(SUPPORT_DENSITY > 0 and np.count_nonzero(X) <= SUPPORT_DENSITY * X.size)
        return state["support"]

    def first_t():
        """W^(1) input-major (D1.6's operand), packed from the network's array when the
        network holds the current values."""
        if state["WT"] is None:
            state["WT"] = np.zeros((Ws[0].shape[1], S1), net.dtype)
        if state["owner"] == "net":
            _pick(dense._pack_transpose, pack_work)(Ws[0], state["WT"])
        return state["WT"]

    def turn_state():
        """Transpose the optimiser's state arrays of W^(1) (momentum's v, Adam's m and v)."""
        for arrays in optimizer.state.values():
            if arrays:
                turned = np.empty(arrays[0].shape[::-1], arrays[0].dtype)
                _pick(dense._pack_transpose, pack_work)(arrays[0], turned)
                arrays[0] = turned

    def hold_state():
        """Turn the optimiser's state of W^(1) input-major, as W^(1) is held: its update rule
        is elementwise, so the same rule on the same elements in another order is the same
        update."""
        if not state["state_held"]:
            turn_state()
            state["state_held"] = True

    def sync():
        """Write W^(1) held input-major (and the optimiser's state of it) back into the
        network's (the optimiser's) arrays."""
        if state["owner"] == "fast":
            _pick(dense._pack_transpose, pack_work)(state["WT"], Ws[0])
            state["owner"] = "net"
        if state["state_held"]:
            turn_state()
            state["state_held"] = False

    def forward_packed(N, sup):
        """Per layer: its dense forward leaves A_prevᵗ in the workspace's AT (``packed`` of
        the weight-gradient forms; the first layer's support forms pack nothing)."""
        return [dense.forward_packs(sizes[l], N) and not (l == 0 and sup) for l in range(L)]

    def layers_step(X, Y, lr, held=False):
        N = X.shape[1]
        sup = use_support(X)
        B = net.workspace(N, support=sup)
        r = reals(N)
        WT = first_t() if sup else None
        packed = forward_packed(N, sup)
        for l, (W, b) in enumerate(zip(Ws, bs)):  # forward: D1.5 (D1.6 on the support of X)
            kind = IDENTITY if l == L - 1 else kinds[l]
            A_out = B.Z[l] if l == L - 1 else B.A[l]
            if l == 0 and sup:
                _pick(dense.support_of, X.size * SUPPORT_OF_WORK)(X, B.col_ptr, B.col_j, B.col_val, B.row_ptr, B.row_n,
                                                                 B.row_val, B.starts)
                _pick(dense.forward_support_fast, W.size * N)(WT, b, B.col_ptr, B.col_j, B.col_val, kind, alphas[l],
                                                              B.Z[l], A_out, B.ZT)
            else:
                _pick(dense.forward_activation_fast, work * N)(W, X if l == 0 else B.A[l - 1], b, kind, alphas[l],
                                                               B.Z[l], A_out, B.AT[l])
        Z, A, H = B.Z[L - 1], B.A[L - 1], B.H[L - 1]
        J = _output_pass(code, Z, Y, kinds[L - 1], alphas[L - 1], r[SCALE], A, H, B.per_sample)
        wwork = work * N  # the largest layer's: one build per kernel (module docstring)
        if lr > 0:  # ∂J/∂b^(L) = Σ_n H^(L) (D2.14 with σ' = 1), stepped as it is summed (D2.15)
            _pick(dense.hadamard_bias_sgd_fast, wwork)(H, H, H, IDENTITY, 0.0, lr, H, bs[L - 1])
        else:
            _pick(dense.hadamard_bias_grad_fast, wwork)(H, H, H, IDENTITY, 0.0, H, dbs[L - 1])
        for l in range(L - 1, -1, -1):  # backward
            W = Ws[l]
            H = B.H[l]
            A_prev = X if l == 0 else B.A[l - 1]
            if l > 0:  # D2.25 with the old W, then D2.14 (D2.15 when stepping: b^(l-1) is read no more)
                _pick(dense.input_grad_fast, input_work * N)(W, H, B.D[l - 1])
                below = (B.D[l - 1], B.Z[l - 1], B.A[l - 1], kinds[l - 1], alphas[l - 1])
                if lr > 0:
                    _pick(dense.hadamard_bias_sgd_fast, wwork)(*below, lr, B.H[l - 1], bs[l - 1])
                else:
                    _pick(dense.hadamard_bias_grad_fast, wwork)(*below, B.H[l - 1], dbs[l - 1])
            sparse = l == 0 and sup
            if sparse:
                _pick(dense._pack_transpose, pack_work)(H, B.HT)
            if lr > 0:  # D2.6 / D2.8 (the biases were stepped by D2.15)
                lam = r[PER_LAYER + 2 * l + 1]
                if sparse:  # on W^(1) held input-major
                    if lam != 0:
                        _pick(optim.decay_fast, WT.size)(WT.reshape(-1), lr, lam)  # O16
                    _pick(dense.weight_grad_support_sgd_fast, wwork)(B.HT, B.row_ptr, B.row_n, B.row_val, lr, WT)
                    state["owner"] = "fast"
                    if not defer_sync:
                        sync()
                else:
                    if lam != 0:
                        _pick(optim.decay_fast, W.size)(W.reshape(-1), lr, lam)  # O16
                    _pick(dense.weight_grad_sgd_fast, wwork)(H, A_prev, lr, W, B.AT[l], packed[l])
            elif sparse:  # D2.7 input-major, then turned around into the gradient array
                _pick(dense.weight_grad_support_fast, wwork)(B.HT, B.row_ptr, B.row_n, B.row_val, B.dWT)
                if held:  # the optimiser updates Wᵗ from it (step)
                    state["dWT"] = B.dWT
                else:
                    _pick(dense._pack_transpose, pack_work)(B.dWT, dWs[l])
            else:
                _pick(dense.weight_grad_fast, wwork)(H, A_prev, dWs[l], B.AT[l], packed[l])
        return float(J)

    small_args = {}  # N -> small_step's arguments after (X, Y, lr), built once per batch size

    def run(X, Y, lr):
        N = X.shape[1]
        args = small_args.get(N)
        if args is None:
            if work * N >= PARALLEL_WORK:
                return layers_step(X, Y, lr)
            if len(small_args) >= 4:  # as Network.workspace, a few batch sizes are kept
                small_args.pop(next(iter(small_args)))
            B = net.workspace(N)
            ctx = step_context(net.theta, grad_flat, B.flat, reals(N), B.layout)
            args = small_args[N] = (ctx.ctypes.data, code, ctx, B, net.theta)  # what the table points to, kept alive
        return float(small_step(X, Y, lr, args[0], args[1]))

    def step(X, Y):
        if fused_sgd:
            args = small_args.get(X.shape[1])  # the small regime's call inlined here: one Python frame less
            J = small_step(X, Y, float(optimizer.lr), args[0], args[1]) if args else run(X, Y, float(optimizer.lr))
            optimizer.t += 1
            return J
        if hold_other and work * X.shape[1] >= PARALLEL_WORK and use_support(X):
            J = layers_step(X, Y, 0.0, held=True)
            hold_state()
            state["owner"] = "fast"  # Wᵗ is the live copy from here on
            step_trusted(optimizer, [state["WT"], *params[1:]], [state["dWT"], *grads[1:]], mask)
            return J
        J = run(X, Y, 0.0)
        step_trusted(optimizer, params, grads, mask)
        return J

    def gradients(X, Y):
        """J and ∂J/∂θ (flat parameter order) of one batch, parameters unchanged."""
        return run(X, Y, 0.0), grads

    step.gradients = gradients
    step.sync = sync
    step.grads = grads
    step.regime = lambda N: "layers" if work * N >= PARALLEL_WORK else "small"
    return step


# ------------------------------------------------------------------------ evaluation
def make_fast_forward(net):
    """``forward(X, Y) -> (J, A)`` for a network :func:`supports` accepts, or None.

    The forward half of the step: D1.5 per layer (the output layer storing Z), then the
    fused output pass (L10 / L11 / L12) for the output A^(L) and the loss J of the batch
    (its H^(L) is written to a scratch buffer and not used). The kernels, and for each
    operation the build (parallel or serial twin, by the same rule: the largest layer's
    weights × batch for the products), are the training step's, so evaluating compiles
    nothing that training has not compiled.
    X and Y are copied into private buffers, allocated for the largest batch seen: a
    read-only or strided input would otherwise be a new Numba signature (a new compile).
    The returned A is a view of a buffer that the next call overwrites.
    """
    if not supports(net):
        return None
    code = _output_code(net)
    L = len(net.layers)
    kinds = [CODES.get(layer.activation, IDENTITY) for layer in net.layers]
    alphas = [float(layer.alpha) for layer in net.layers]
    sizes = [net.input_shape[0]] + [layer.units for layer in net.layers]
    work = max(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    bufs = {"N": 0}

    def view(name, rows, N):
        return bufs[name][:rows * N].reshape(rows, N)

    def forward(X, Y):
        N = X.shape[-1]
        if N > bufs["N"]:
            for l, s in enumerate(sizes):
                bufs[f"X{l}"] = np.empty(s * N, net.dtype)  # X0 = the input, Xl = A^(l)
                bufs[f"Z{l}"] = np.empty(s * N, net.dtype)
            for name in ("Y", "H"):
                bufs[name] = np.empty(sizes[-1] * N, net.dtype)
            bufs["T"] = np.empty(max(sizes[:-1]) * N, net.dtype)
            bufs["per_sample"] = np.empty(N, net.dtype)
            bufs["N"] = N
        A_prev = view("X0", sizes[0], N)
        np.copyto(A_prev, X.reshape(sizes[0], N))
        Yb = view("Y", sizes[-1], N)
        np.copyto(Yb, Y)
        for l, (W, b) in enumerate(net.params):  # D1.5; the output layer stores Z only
            Z = view(f"Z{l + 1}", sizes[l + 1], N)
            A = Z if l == L - 1 else view(f"X{l + 1}", sizes[l + 1], N)
            _pick(dense.forward_activation_fast, work * N)(W, A_prev, b, IDENTITY if l == L - 1 else kinds[l],
                                                           alphas[l], Z, A, bufs["T"][:sizes[l] * N].reshape(N, sizes[l]))
            A_prev = A
        A, H, per_sample = view(f"X{L}", sizes[-1], N), view("H", sizes[-1], N), bufs["per_sample"][:N]
        scale = net.loss_fn.scale(N) if code == SQUARED else 1.0
        J = _output_pass(code, Z, Yb, kinds[-1], alphas[-1], scale, A, H, per_sample)
        return float(J), A

    return forward
