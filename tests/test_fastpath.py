"""The fast engine's whole-step composer (indexnet/train/fastpath.py) against the generic path.

Tolerance: loss and every gradient equal the exact loops engine's
``Network.backward(fused=True)`` within rtol 1e-10 (float64) and 1e-4 (float32), relative
to the largest magnitude of each array (the fast forms reassociate sums, nothing else);
a full step with SGD (folded into the weight gradient, D2.6) leaves the same parameters
as the generic step within the same tolerance. Both regimes (small: one serial call of
the fast forms' serial twins; layers: one fast form per call) run.
"""
import numba
import numpy as np
import pytest

from indexnet._jit import address_view
from indexnet.train import fastpath
from indexnet.nn.network import LAYOUT_COLS, Network
from indexnet.train.step import make_train_step

RTOL = {np.float64: 1e-10, np.float32: 1e-4}
NETS = [
    ([5, 7, 4], ["relu", "softmax"], "cross_entropy"),
    ([3, 6, 5, 2], ["tanh", "leaky_relu", "sigmoid"], "binary_cross_entropy"),
    ([1, 16, 16, 1], ["tanh", "tanh", "identity"], "mse"),
    ([4, 9, 3], ["sigmoid", "tanh"], "half_se"),
    ([3, 8, 2], ["softplus", "softplus"], "mse"),
]


class Recorder:
    """An optimiser that only keeps a copy of the gradients it is given."""

    def __init__(self):
        self.grads, self.t = None, 0

    def step(self, params, grads, mask):
        self.grads = [g.copy() for g in grads]
        self.t += 1


def _data(net, N, rng):
    X = rng.standard_normal((net.input_shape[0], N)).astype(net.dtype)
    K = net.output_shape[0]
    if net.loss_fn.name == "cross_entropy":
        Y = np.ascontiguousarray(np.eye(K, dtype=net.dtype)[:, rng.integers(0, K, N)])
    elif net.loss_fn.name == "binary_cross_entropy":
        Y = rng.uniform(size=(K, N)).astype(net.dtype)
    else:
        Y = rng.standard_normal((K, N)).astype(net.dtype)
    return X, Y


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), np.finfo(b.dtype).tiny))


# float32 runs in the layers regime only (the MNIST case); each extra (regime, dtype)
# is one more compile of a whole step, which the suite's time budget cannot carry
@pytest.mark.parametrize("regime,dtype", [("small", np.float64), ("layers", np.float64), ("layers", np.float32)])
@pytest.mark.parametrize("spec", NETS, ids=lambda s: "-".join(map(str, s[0])) if isinstance(s[0], list) else str(s))
def test_fast_step_equals_generic(spec, regime, dtype, monkeypatch, rng):
    """Loss and every gradient of one fast step equal the generic exact-loops pass within RTOL
    (layers float32: every operation threaded; layers float64: every operation serial)."""
    if regime == "layers":
        monkeypatch.setattr(fastpath, "PARALLEL_WORK", 1)
        if dtype == np.float32:
            monkeypatch.setattr(fastpath, "PARALLEL_OP", 1)
    sizes, acts, loss = spec
    net = Network.from_sizes(sizes, acts, loss, dtype=dtype, seed=2)
    X, Y = _data(net, 11, rng)
    ref = net.backward(X, Y, "loops", input_grad=False)
    want = [g[k] for g in ref.grads for k in ("W", "b")]
    rec = Recorder()
    step = fastpath.make_fast_step(net, rec)
    assert step.regime(11) == regime
    J = step(X, Y)
    assert abs(J - ref.loss) <= RTOL[dtype] * abs(ref.loss)
    for got, exp in zip(rec.grads, want):
        assert _rel(got, exp) <= RTOL[dtype]


@pytest.mark.parametrize("regime", ["small", "layers"])
def test_train_step_dispatch_and_sgd(regime, monkeypatch, rng):
    """make_train_step(fast) uses the composer; three SGD steps (folded into the weight
    gradient, D2.6, with weight decay) match the generic loops steps."""
    optim = pytest.importorskip("indexnet.nn.optim")
    if regime == "layers":
        monkeypatch.setattr(fastpath, "PARALLEL_WORK", 1)
    a = Network.from_sizes([4, 8, 3], ["relu", "softmax"], "cross_entropy", seed=3)
    b = a.copy()
    fast_step = make_train_step(a, optim.SGD(lr=0.1, weight_decay=0.01), "fast")
    slow_step = make_train_step(b, optim.SGD(lr=0.1, weight_decay=0.01), "loops")
    assert hasattr(fast_step, "regime") and not hasattr(slow_step, "regime")
    X, Y = _data(a, 6, rng)
    for _ in range(3):
        Ja, Jb = fast_step(X, Y), slow_step(X, Y)
        assert abs(Ja - Jb) <= 1e-10 * abs(Jb)
    np.testing.assert_allclose(a.flat_params(), b.flat_params(), rtol=1e-10, atol=1e-12)


def test_unsupported_falls_back():
    """Softmax with a squared loss has no fused output: make_fast_step declines, the generic path runs."""
    net = Network.from_sizes([3, 4, 2], ["relu", "softmax"], "mse")
    assert fastpath.make_fast_step(net, Recorder()) is None
    step = make_train_step(net, Recorder(), "fast")
    assert not hasattr(step, "regime")


def test_batch_size_changes(rng):
    """A shorter batch (an epoch's last) gets its own buffers; both sizes keep matching the generic pass."""
    net = Network.from_sizes([3, 5, 2], ["tanh", "identity"], "mse", seed=4)
    rec = Recorder()
    step = fastpath.make_fast_step(net, rec)
    for N in (8, 3, 8):
        X, Y = _data(net, N, rng)
        J = step(X, Y)
        ref = net.backward(X, Y, "loops", input_grad=False)
        assert abs(J - ref.loss) <= 1e-10 * abs(ref.loss)
        assert _rel(rec.grads[0], ref.grads[0]["W"]) <= 1e-10


def test_support_regime_equals_generic(monkeypatch, rng):
    """An input that is mostly zeros (as MNIST's pixels), with the support forms selected,
    takes D1.6, D2.7 and D2.8 in the first layer; loss, gradients and an SGD step match
    the generic pass."""
    optim = pytest.importorskip("indexnet.nn.optim")
    monkeypatch.setattr(fastpath, "PARALLEL_WORK", 1)
    monkeypatch.setattr(fastpath, "SUPPORT_DENSITY", 0.5)
    net = Network.from_sizes([30, 12, 4], ["relu", "softmax"], "cross_entropy", seed=6)
    X, Y = _data(net, 9, rng)
    X[rng.random(X.shape) < 0.8] = 0
    ref = net.backward(X, Y, "loops", input_grad=False)
    rec = Recorder()
    J = fastpath.make_fast_step(net, rec)(X, Y)
    assert abs(J - ref.loss) <= 1e-10 * abs(ref.loss)
    for got, exp in zip(rec.grads, [g[k] for g in ref.grads for k in ("W", "b")]):
        assert _rel(got, exp) <= 1e-10
    b = net.copy()
    fast = make_train_step(net, optim.SGD(lr=0.1), "fast")
    slow = make_train_step(b, optim.SGD(lr=0.1), "loops")
    for _ in range(2):
        assert abs(fast(X, Y) - slow(X, Y)) <= 1e-10
    np.testing.assert_allclose(net.flat_params(), b.flat_params(), rtol=1e-10, atol=1e-12)


@pytest.fixture
def support_net(monkeypatch, rng):
    """A 40-140-3 classifier that takes the support forms in the layers regime, and three
    batches whose inputs are about 80 % zeros (as MNIST's pixels)."""
    monkeypatch.setattr(fastpath, "PARALLEL_WORK", 1)
    monkeypatch.setattr(fastpath, "SUPPORT_DENSITY", 0.5)
    net = Network.from_sizes([40, 140, 3], ["relu", "softmax"], "cross_entropy", seed=2)
    batches = []
    for _ in range(3):
        X, Y = _data(net, 11, rng)
        X[rng.random(X.shape) < 0.8] = 0
        batches.append((X, Y))
    return net, batches


def test_deferred_sync_holds_the_first_layer_input_major(support_net, rng):
    """With plain SGD and ``defer_sync=True`` the support regime keeps W^(1) input-major
    between steps: after ``step.sync()`` the network's parameters are bit for bit those of
    the same steps synchronised after every step; a W^(1) written into the network after
    a sync (as a resume does) is the one the next step uses; weight decay acts on the
    held copy."""
    optim = pytest.importorskip("indexnet.nn.optim")
    net, batches = support_net
    twin = net.copy()
    held = make_train_step(net, optim.SGD(lr=0.1, weight_decay=0.01), "fast", defer_sync=True)
    each = make_train_step(twin, optim.SGD(lr=0.1, weight_decay=0.01), "fast")
    W_before = net.params[0][0].copy()
    for X, Y in batches:
        assert held(X, Y) == each(X, Y)
    assert np.array_equal(net.params[0][0], W_before), "W^(1) was written back before sync()"
    held.sync()
    assert np.array_equal(net.flat_params(), twin.flat_params())
    held.sync()  # a second sync changes nothing
    assert np.array_equal(net.flat_params(), twin.flat_params())
    new = rng.standard_normal(net.params[0][0].shape)
    net.params[0][0][...] = new
    twin.params[0][0][...] = new
    X, Y = batches[0]
    assert held(X, Y) == each(X, Y)
    held.sync()
    assert np.array_equal(net.flat_params(), twin.flat_params())
    slow = net.copy()
    slow.params[0][0][...] = twin.params[0][0]
    ref = make_train_step(slow, optim.SGD(lr=0.1, weight_decay=0.01), "loops")
    fast = held
    for X, Y in batches:
        assert abs(fast(X, Y) - ref(X, Y)) <= 1e-10
    fast.sync()
    np.testing.assert_allclose(net.flat_params(), slow.flat_params(), rtol=1e-10, atol=1e-12)


def test_small_step_workspace_is_views(rng):
    """The small regime's buffers are views of the network's workspace (one flat array per
    batch size), the gradients stay the same arrays across batch sizes, and the
    parameters the step updates are the network's own arrays."""
    net = Network.from_sizes([2, 6, 5, 3], ["tanh", "relu", "identity"], "mse", seed=5)
    optim = pytest.importorskip("indexnet.nn.optim")
    step = make_train_step(net, optim.SGD(lr=0.05, weight_decay=0.01), "fast")
    grads = list(step.grads)
    for N in (7, 4):
        X, Y = _data(net, N, rng)
        before = [w.copy() for w in net.params[0]]
        step(X, Y)
        B = net.workspace(N)
        assert all(a.base is B.flat for a in (*B.Z, *B.A, *B.H, *B.D))
        assert all(g is h and g.base is grads[0].base for g, h in zip(step.grads, grads))
        assert not np.array_equal(before[0], net.params[0][0])


def test_workspace_view_is_the_block_and_checks_its_range():
    """small_step's views (fastpath._view, built from the flat array's pointer rather than by
    reshape) are the C-ordered (rows, cols) blocks at their offsets, writes go through to
    the flat array, and a block past its end is an IndexError, not a read out of bounds."""
    flat = np.arange(40.0)
    V = fastpath._view(flat, 5, 3, 4)
    np.testing.assert_array_equal(V, np.arange(5.0, 17.0).reshape(3, 4))
    assert V.flags.c_contiguous
    V[2, 3] = -1.0
    assert flat[16] == -1.0
    del flat
    assert V[2, 3] == -1.0 and V[0, 0] == 5.0  # the view keeps its memory alive
    with pytest.raises(IndexError, match="workspace block"):
        fastpath._view(np.zeros(10), 8, 1, 3)


@numba.njit
def _through_address(context, n, like, i, value):
    """Writes ``value`` at ``i`` of the ``n`` elements at address ``context``; returns their sum."""
    v = address_view(context, n, like)
    v[i] = value
    return v.sum()


def test_address_view_is_the_memory_at_the_address():
    """address_view(address, n, like) is the n elements of like's dtype (an array's, or a
    NumPy scalar type's) at that address: reads and writes go through to the array there."""
    x = np.arange(6.0)
    assert _through_address(x.ctypes.data, 6, x, 2, 10.0) == 0 + 1 + 10 + 3 + 4 + 5 and x[2] == 10.0
    k = np.arange(4, dtype=np.int64)
    assert _through_address(k.ctypes.data, 3, np.int64, 0, 7) == 7 + 1 + 2 and k[0] == 7 and k[3] == 3


def test_step_context_checks_its_buffers():
    """The small step's context table records each buffer's address and length, and refuses
    buffers that do not fit the step (not contiguous, mixed dtypes, a layout of other columns)."""
    theta, grads, flat_ = np.zeros(10), np.zeros(10), np.zeros(30)
    reals, layout = np.zeros(5), np.zeros((2, LAYOUT_COLS), np.int64)
    ctx = fastpath.step_context(theta, grads, flat_, reals, layout)
    assert ctx[fastpath.CTX_THETA] == theta.ctypes.data and ctx[fastpath.CTX_THETA + 1] == 10
    assert ctx[fastpath.CTX_LAYOUT] == layout.ctypes.data and ctx[fastpath.CTX_LAYOUT + 1] == 2
    with pytest.raises(ValueError, match="grads must be C-contiguous"):
        fastpath.step_context(theta, np.zeros(20)[::2], flat_, reals, layout)
    with pytest.raises(ValueError, match="one dtype"):
        fastpath.step_context(theta, grads, flat_.astype(np.float32), reals, layout)
    with pytest.raises(ValueError, match="columns"):
        fastpath.step_context(theta, grads, flat_, reals, layout[:, :4].copy())


@pytest.mark.parametrize("make_opt", [lambda o: o.Momentum(lr=0.05, mu=0.9, weight_decay=0.01, engine="fast"),
                                      lambda o: o.Adam(lr=0.01, weight_decay=0.01, engine="fast")],
                         ids=["momentum", "adam"])
def test_deferred_sync_holds_the_optimiser_state_input_major(make_opt, support_net):
    """With momentum or Adam and ``defer_sync=True`` the support regime keeps W^(1) and the
    optimiser's state of it input-major between steps (the update rules are elementwise):
    after ``step.sync()`` the parameters and the optimiser's state (as a checkpoint stores
    it) are bit for bit those of the same steps synchronised after every step, also after
    a state_dict is loaded back between epochs (as a resume does)."""
    optim = pytest.importorskip("indexnet.nn.optim")
    net, batches = support_net
    twin = net.copy()
    opt_held, opt_each = make_opt(optim), make_opt(optim)
    held = make_train_step(net, opt_held, "fast", defer_sync=True)
    each = make_train_step(twin, opt_each, "fast")
    W_before = net.params[0][0].copy()
    for epoch in range(2):
        for X, Y in batches:
            assert held(X, Y) == each(X, Y)
        if epoch == 0:
            assert np.array_equal(net.params[0][0], W_before), "W^(1) was written back before sync()"
        held.sync()
        assert np.array_equal(net.flat_params(), twin.flat_params())
        sd_held, sd_each = opt_held.state_dict(), opt_each.state_dict()
        assert sd_held.keys() == sd_each.keys()
        for key in sd_each:
            assert np.array_equal(sd_held[key], sd_each[key]), key
        opt_held.load_state_dict(sd_held)
