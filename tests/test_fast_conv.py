"""The convolution and max-pool ``_fast`` forms (the trainer's) against the exact loops
forms, the fused C12 and P8 against the composition of the exact forms they fuse, and the
fast engine training a small CNN to the loss the exact engine reaches.

Tolerance, as in tests/test_fast_forms.py: a fast form is the same sum reassociated
(fastmath, register blocks over 4 channels × 3 taps, the padded input packed on a zero
frame), so |fast − loops| ≤ rtol · Σ|terms| elementwise with rtol 1e-12 (float64) and
2e-5 (float32), Σ|terms| being the same formula evaluated by the loops form on |inputs|.
The max-pool forward is a max (exact): its values and winners equal the loops form's bit
for bit. Shapes are random: stride 1 and 2, padding 0 and 1 (up to 2 for larger
kernels), odd and even sizes, 1 to 9 output channels (whole and partial blocks of 4), N
from 1, and the preset cnn's realistic layer shapes as explicit examples.
"""
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from indexnet.kernels import activations as act
from indexnet.kernels import conv2d, dense, pooling
from indexnet.nn.layers.conv import framed_shape, padded_shape

RTOL = {np.float64: 1e-12, np.float32: 2e-5}
DTYPES = [np.float64, np.float32]
few = settings(max_examples=8, deadline=None)
ELEMENTWISE = ["identity", "relu", "leaky_relu", "sigmoid", "tanh", "softplus"]


def _close(got, want, scale, dtype, ulps=0):
    """|got − want| <= rtol · scale (+ ``ulps`` units in the last place of the values)."""
    assert got.shape == want.shape
    bound = RTOL[dtype] * scale + ulps * np.spacing(np.maximum(np.abs(want), np.abs(got)).astype(dtype)) \
        + np.finfo(dtype).tiny
    assert np.all(np.abs(got - want) <= bound), float(np.max(np.abs(got - want) - bound))


@st.composite
def geometries(draw):
    """(C_in, C_out, height, width, N, kh, kw, stride, pad) with the kernel fitting the padded input."""
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    pad = draw(st.integers(0, 2 if max(kh, kw) > 3 else 1))
    stride = draw(st.integers(1, 2))
    height = draw(st.integers(max(1, kh - 2 * pad), 12))
    width = draw(st.integers(max(1, kw - 2 * pad), 12))
    return (draw(st.integers(1, 4)), draw(st.integers(1, 9)), height, width, draw(st.integers(1, 40)),
            kh, kw, stride, pad)


def _problem(geometry, dtype, seed):
    C_in, C_out, height, width, N, kh, kw, stride, pad = geometry
    rng = np.random.default_rng(seed)
    Ho, Wo = conv2d.out_size(height, kh, stride, pad), conv2d.out_size(width, kw, stride, pad)
    K = rng.standard_normal((C_out, C_in, kh, kw)).astype(dtype)
    X = rng.standard_normal((C_in, height, width, N)).astype(dtype)
    b = rng.standard_normal(C_out).astype(dtype)
    H = rng.standard_normal((C_out, Ho, Wo, N)).astype(dtype)
    return K, X, b, H, stride, pad


#: the preset cnn's two convolutions (batch 100), and a 5 × 5 kernel with stride 2
REALISTIC = [(1, 8, 28, 28, 100, 3, 3, 1, 1), (8, 16, 14, 14, 100, 3, 3, 1, 1), (3, 6, 11, 10, 7, 5, 5, 2, 2)]


@pytest.mark.parametrize("dtype", DTYPES)
@few
@given(geometry=geometries(), kind=st.sampled_from(ELEMENTWISE), seed=st.integers(0, 2**31))
@example(geometry=REALISTIC[0], kind="relu", seed=1)
@example(geometry=REALISTIC[1], kind="relu", seed=2)
@example(geometry=REALISTIC[2], kind="tanh", seed=3)
def test_conv_fast_forms_equal_loops(dtype, geometry, kind, seed):
    """C12 (forward and σ) against C5 then A0 composed, and C7, C8, C9 (by C10's route)
    against their loops forms, within rtol · Σ|terms|."""
    K, X, b, H, s, p = _problem(geometry, dtype, seed)
    aK, aX, ab, aH = np.abs(K), np.abs(X), np.abs(b), np.abs(H)
    code = act.CODES[kind]
    Z, A = np.empty(H.shape, dtype), np.empty(H.shape, dtype)
    conv2d.forward_activation_fast(K, X, b, s, p, code, 0.01, Z, A, np.empty(padded_shape(X.shape, p), dtype))
    Z_ref = conv2d.forward_loops(K, X, b, s, p, np.empty(H.shape, dtype))
    scale = conv2d.forward_loops(aK, aX, ab, s, p, np.empty(H.shape, dtype))
    _close(Z, Z_ref, scale, dtype)
    A_ref = act.activation_loops(Z_ref.reshape(-1, Z.shape[-1]), code, 0.01, np.empty((Z.size // Z.shape[-1],
                                                                                         Z.shape[-1]), dtype))
    _close(A.reshape(A_ref.shape), A_ref, scale.reshape(A_ref.shape), dtype, ulps=4)  # σ is 1-Lipschitz
    P = np.empty(padded_shape(X.shape, p), dtype)
    dK = conv2d.kernel_grad_fast(H, X, s, p, np.empty_like(K), P)
    dK_ref = conv2d.kernel_grad_loops(H, X, s, p, np.empty_like(K))
    _close(dK, dK_ref, conv2d.kernel_grad_loops(aH, aX, s, p, np.empty_like(K)), dtype)
    # packed=True reads the P the call above packed (as the composer reuses the forward's): same values
    np.testing.assert_array_equal(conv2d.kernel_grad_fast(H, X * np.nan, s, p, np.empty_like(K), P, True), dK)
    db = conv2d.bias_grad_fast(H, np.empty_like(b))
    _close(db, conv2d.bias_grad_loops(H, np.empty_like(b)), conv2d.bias_grad_loops(aH, np.empty_like(b)), dtype)
    D = conv2d.input_grad_fast(K, H, s, p, np.empty_like(X), np.empty(framed_shape(K.shape, X.shape, p), dtype))
    _close(D, conv2d.input_grad_loops(K, H, s, p, np.empty_like(X)),
           conv2d.input_grad_loops(aK, aH, s, p, np.empty_like(X)), dtype)


def test_fast_forms_overwrite_stale_buffers():
    """The packing buffers and outputs may hold anything (NaN here) from a previous call:
    every element the forms read is written first (the zero frames included)."""
    K, X, b, H, s, p = _problem((2, 5, 7, 6, 3, 3, 3, 1, 1), np.float64, 0)
    P = np.full(padded_shape(X.shape, p), np.nan)
    G = np.full(framed_shape(K.shape, X.shape, p), np.nan)
    Z, A = np.full(H.shape, np.nan), np.full(H.shape, np.nan)
    conv2d.forward_activation_fast(K, X, b, s, p, act.RELU, 0.0, Z, A, P)
    dK = conv2d.kernel_grad_fast(H, X, s, p, np.full(K.shape, np.nan), np.full_like(P, np.nan))
    D = conv2d.input_grad_fast(K, H, s, p, np.full(X.shape, np.nan), G)
    assert np.isfinite(Z).all() and np.isfinite(A).all() and np.isfinite(dK).all() and np.isfinite(D).all()


@st.composite
def pool_geometries(draw):
    """(C, height, width, N, k, stride): overlapping (s < k), tiling (s = k) and gapped (s > k) windows."""
    k = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 3))
    return (draw(st.integers(1, 9)), draw(st.integers(k, 11)), draw(st.integers(k, 11)), draw(st.integers(1, 40)),
            k, stride)


@pytest.mark.parametrize("dtype", DTYPES)
@few
@given(geometry=pool_geometries(), kind=st.sampled_from(ELEMENTWISE), seed=st.integers(0, 2**31))
@example(geometry=(8, 28, 28, 100, 2, 2), kind="relu", seed=1)
@example(geometry=(16, 14, 14, 100, 2, 2), kind="relu", seed=2)
def test_maxpool_fast_forms_equal_loops(dtype, geometry, kind, seed):
    """P2 equals the loops form bit for bit (values and winners, ties included); P3 equals
    it within rtol · Σ|terms|; P8 equals P3, D2.13 and C8 composed from the exact forms."""
    C, height, width, N, k, s = geometry
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((C, height, width, N)).astype(dtype)
    X[:, ::2] = np.round(X[:, ::2])  # ties inside windows
    Ho, Wo = (height - k) // s + 1, (width - k) // s + 1
    Z, arg = np.empty((C, Ho, Wo, N), dtype), np.empty((C, Ho, Wo, N), np.int64)
    Z_ref, arg_ref = np.empty_like(Z), np.empty_like(arg)
    pooling.maxpool_forward_fast(X, k, s, Z, arg)
    pooling.maxpool_forward_loops(X, k, s, Z_ref, arg_ref)
    np.testing.assert_array_equal(Z, Z_ref)
    np.testing.assert_array_equal(arg, arg_ref)
    H = rng.standard_normal(Z.shape).astype(dtype)
    D_ref = pooling.maxpool_backward_loops(H, arg, k, s, np.empty_like(X))
    scale = pooling.maxpool_backward_loops(np.abs(H), arg, k, s, np.empty_like(X))
    _close(pooling.maxpool_backward_fast(H, arg, k, s, np.full_like(X, np.nan)), D_ref, scale, dtype)
    # P8: the pooled layer's input is a convolution's A = σ(Z_conv)
    code = act.CODES[kind]
    Zc = rng.standard_normal(X.shape).astype(dtype)
    flat = (Zc.size // N, N)
    Ac = act.activation_loops(Zc.reshape(flat), code, 0.01, np.empty(flat, dtype)).reshape(X.shape)
    dsig = act.activation_grad_loops(Zc.reshape(flat), Ac.reshape(flat), code, 0.01, np.empty(flat, dtype))
    Hc_ref = dense.hadamard_loops(D_ref.reshape(flat), dsig, np.empty(flat, dtype)).reshape(X.shape)
    db_ref = conv2d.bias_grad_loops(Hc_ref, np.empty(C, dtype))
    Hc, db = np.full_like(X, np.nan), np.empty(C, dtype)
    pooling.maxpool_backward_hadamard_bias_fast(H, arg, k, s, Zc, Ac, code, 0.01, Hc, db)
    # σ' is taken from A for sigmoid and tanh (tanh's A by its polynomial form, 3 ulp), so it
    # is exact to a few ulp of 1, not of σ': Σ|terms| carries 8 ε beside |σ'|
    hscale = scale * (np.abs(dsig.reshape(X.shape)) + 8 * np.finfo(dtype).eps / RTOL[dtype])
    _close(Hc, Hc_ref, hscale, dtype)
    _close(db, db_ref, conv2d.bias_grad_loops(hscale, np.empty(C, dtype)), dtype)


# ------------------------------------------------------------------ the whole step
def _cnn(dtype, variant):
    """Two small CNNs: conv/pool/conv(stride 2)/flatten/dense/dense (every σ' route: P8
    into a convolution, A6+D2.13+C8 for a convolution under a flatten, D2.14 for a hidden
    dense layer), and pool/conv/conv/flatten/dense (P3 into the input's Δ is skipped, a
    convolution under a convolution)."""
    from indexnet.nn.layers.conv import Conv2D
    from indexnet.nn.layers.dense import Dense
    from indexnet.nn.layers.flatten import Flatten
    from indexnet.nn.layers.pooling import MaxPool2D
    from indexnet.nn.network import Network

    if variant == 0:
        layers = [Conv2D(3, 3, pad=1, activation="relu"), MaxPool2D(2), Conv2D(5, (3, 2), stride=2, pad=1,
                  activation="tanh"), Flatten(), Dense(6, "sigmoid"), Dense(4, "softmax")]
    else:
        layers = [MaxPool2D(2, stride=1), Conv2D(4, 3, activation="leaky_relu"), Conv2D(2, 2, activation="relu"),
                  Flatten(), Dense(3, "softmax")]
    return Network(layers, (2, 9, 8), "cross_entropy", dtype=dtype, seed=3)


@pytest.mark.parametrize("variant", [0, 1])
@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_engine_trains_a_cnn_like_the_exact_engine(dtype, variant):
    """The fast engine's step (train/convpath.py, every form a fast form) and the exact loops
    engine's step take 12 SGD steps (weight decay on) on the same batches and report the
    same losses: within 1e-9 relative in float64, 1e-4 in float32 (rounding only:
    reassociated sums, σ' from A); the parameters agree as closely."""
    from indexnet.nn.optim import SGD
    from indexnet.train.step import make_train_step

    rng = np.random.default_rng(variant)
    fast_net, exact_net = _cnn(dtype, variant), _cnn(dtype, variant)
    fast = make_train_step(fast_net, SGD(lr=0.1, weight_decay=1e-3, engine="fast"), "fast")
    exact = make_train_step(exact_net, SGD(lr=0.1, weight_decay=1e-3, engine="loops"), "loops")
    assert "make_conv_step" in fast.__qualname__
    tol = {np.float64: 1e-9, np.float32: 1e-4}[dtype]
    losses = []
    for k in range(12):
        N = 1 + 7 * (k % 3)  # batch sizes 1, 8, 15: a workspace each
        X = rng.standard_normal((2, 9, 8, N)).astype(dtype)
        Y = np.eye(fast_net.output_shape[0], dtype=dtype)[:, rng.integers(0, fast_net.output_shape[0], N)]
        J_fast, J_exact = fast(X, np.ascontiguousarray(Y)), exact(X, np.ascontiguousarray(Y))
        assert abs(J_fast - J_exact) <= tol * abs(J_exact), (k, J_fast, J_exact)
        losses.append(J_exact)
    for p_fast, p_exact in zip(fast_net.params, exact_net.params):
        for a, b in zip(p_fast, p_exact):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    assert losses[-1] != losses[0]  # the parameters moved


def test_conv_step_gradients_equal_network_backward():
    """``step.gradients`` of the conv composer equals ``Network.backward`` on the exact
    engine (float64, within 1e-10 of each gradient's largest value), parameters unchanged."""
    from indexnet.nn.optim import SGD
    from indexnet.train.convpath import make_conv_step

    net = _cnn(np.float64, 0)
    before = net.flat_params()
    rng = np.random.default_rng(5)
    X = rng.standard_normal((2, 9, 8, 6))
    Y = np.ascontiguousarray(np.eye(4)[:, rng.integers(0, 4, 6)])
    J, grads = make_conv_step(net, SGD(lr=0.1)).gradients(X, Y)
    ref = net.backward(X, Y, "loops")
    want = [g[name] for layer, g in zip(net.layers, ref.grads) for name in layer.param_names]
    assert abs(J - ref.loss) <= 1e-12 * abs(ref.loss)
    for g, w in zip(grads, want):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-10 * np.abs(w).max())
    np.testing.assert_array_equal(net.flat_params(), before)
