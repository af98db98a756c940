"""2-D convolution: the three forms of each formula, gradients, independent references, layer.

Formulas of derivations/conv2d.md: forward (C5), kernel_grad (C7), bias_grad (C8),
input_grad (C9, numpy form via C10). Layout samples last: A_prev (C_in, height, width, N),
K (C_out, C_in, kh, kw), Z (C_out, height_out, width_out, N).
"""
from dataclasses import dataclass

import numba
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from scipy.signal import correlate2d

from indexnet._jit import fast
from indexnet.kernels import conv2d
from indexnet.nn.layers.conv import Conv2D, check_conv_geometry
from indexnet.nn.layers.flatten import Flatten

FORMS = ("literal", "loops", "numpy")
FORMULAS = ("forward", "kernel_grad", "bias_grad", "input_grad")
#: loops vs numpy: relative to the largest magnitude of the result
RTOL = 1e-12


@dataclass
class Case:
    """One random convolution problem with its upstream gradient G = ∂J/∂Z."""

    A_prev: np.ndarray
    K: np.ndarray
    b: np.ndarray
    G: np.ndarray
    stride: int
    pad: int

    @property
    def z_shape(self):
        return self.G.shape


def make_case(C_in, C_out, height, width, N, kh, kw, stride, pad, seed=7) -> Case:
    """Standard-normal A_prev, K, b and G for the given geometry."""
    rng = np.random.default_rng(seed)
    height_out, width_out = conv2d.out_size(height, kh, stride, pad), conv2d.out_size(width, kw, stride, pad)
    return Case(
        A_prev=rng.standard_normal((C_in, height, width, N)),
        K=rng.standard_normal((C_out, C_in, kh, kw)),
        b=rng.standard_normal(C_out),
        G=rng.standard_normal((C_out, height_out, width_out, N)),
        stride=stride,
        pad=pad,
    )


@st.composite
def cases(draw, max_hw=8):
    """C_in, C_out 1..4, N 1..3, kernel 1..3 (not always square), stride 1|2, pad 0|1, H, W up to max_hw."""
    C_in, C_out = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, pad = draw(st.sampled_from([1, 2])), draw(st.sampled_from([0, 1]))
    height = draw(st.integers(max(1, kh - 2 * pad), max_hw))
    width = draw(st.integers(max(1, kw - 2 * pad), max_hw))
    N = draw(st.integers(1, 3))
    return make_case(C_in, C_out, height, width, N, kh, kw, stride, pad, seed=draw(st.integers(0, 2**32 - 1)))


def run(formula, fn, c: Case):
    """Call one form of ``formula`` on case ``c`` with a fresh output buffer."""
    if formula == "forward":
        return fn(c.K, c.A_prev, c.b, c.stride, c.pad, np.empty(c.z_shape))
    if formula == "kernel_grad":
        return fn(c.G, c.A_prev, c.stride, c.pad, np.empty_like(c.K))
    if formula == "bias_grad":
        return fn(c.G, np.empty_like(c.b))
    return fn(c.K, c.G, c.stride, c.pad, np.empty_like(c.A_prev))


def form(formula, name):
    return getattr(conv2d, f"{formula}_{name}")


def assert_close(actual, desired, rtol=RTOL):
    """|actual - desired| <= rtol · max|desired| elementwise (sums may cancel to ~0)."""
    scale = max(1.0, float(np.abs(desired).max(initial=0.0)))
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=rtol * scale)


# ------------------------------------------------------------------ forms vs forms
@pytest.mark.parametrize("formula", FORMULAS)
@given(c=cases())
@example(c=make_case(3, 4, 9, 10, 17, 3, 3, 1, 1))  # rows of 17 samples: the loops' inner axpy over n vectorizes
def test_literal_equals_loops_bit_for_bit(formula, c):
    """The literal sum with its Kronecker deltas and the collapsed prange loops give identical float64 bits."""
    np.testing.assert_array_equal(run(formula, form(formula, "literal"), c), run(formula, form(formula, "loops"), c))


@pytest.mark.parametrize("formula", FORMULAS)
@given(c=cases())
@example(c=make_case(3, 4, 9, 10, 17, 3, 3, 1, 1))  # rows of 17 samples: the loops' inner axpy over n vectorizes
def test_loops_match_numpy(formula, c):
    """The loops form and the vectorized im2col / full-correlation form agree to rtol 1e-12."""
    assert_close(run(formula, form(formula, "loops"), c), run(formula, form(formula, "numpy"), c))


@pytest.mark.parametrize("formula", FORMULAS)
def test_fast_build_matches_exact(formula):
    """The fastmath twin (reassociated sums) stays within 1e-12 relative of the exact build."""
    c = make_case(3, 4, 8, 7, 5, 3, 3, 2, 1)
    assert_close(run(formula, fast(form(formula, "loops")), c), run(formula, form(formula, "loops"), c))


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 Numba threads")
@pytest.mark.parametrize("formula", FORMULAS)
def test_loops_independent_of_thread_count(formula):
    """The exact build gives identical bits on 1 and 2 Numba threads (prange over output elements only)."""
    c = make_case(4, 3, 8, 7, 6, 3, 2, 1, 1)
    fn, before = form(formula, "loops"), numba.get_num_threads()
    try:
        results = [numba.set_num_threads(t) or run(formula, fn, c) for t in (1, 2)]
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(*results)


# ------------------------------------------------------------ independent references
@given(c=cases())
def test_forward_matches_scipy_correlate2d(c):
    """Eq. C5 is scipy's 2-D cross-correlation ('valid' on the padded input), summed over C_in, strided, plus b."""
    Z = run("forward", conv2d.forward_loops, c)
    p, s = c.pad, c.stride
    A_pad = np.pad(c.A_prev, ((0, 0), (p, p), (p, p), (0, 0)))
    want = np.empty_like(Z)
    for o in range(c.K.shape[0]):
        for n in range(c.A_prev.shape[3]):
            full = sum(correlate2d(A_pad[ci, :, :, n], c.K[o, ci], mode="valid") for ci in range(c.A_prev.shape[0]))
            want[o, :, :, n] = full[::s, ::s] + c.b[o]
    assert_close(Z, want)


def test_seed_sum_is_cross_correlation():
    """Seed 000 eq. 10 summed literally, Σ_m Σ_n f(m,n) g(m-i, n-j), equals the kernel's cross-correlation (eq. C2)."""
    rng = np.random.default_rng(3)
    f = rng.standard_normal((6, 7))
    g = rng.standard_normal((3, 2))
    height_out, width_out = 6 - 3 + 1, 7 - 2 + 1
    seed = np.zeros((height_out, width_out))
    for i in range(height_out):
        for j in range(width_out):
            for m in range(6):
                for n in range(7):
                    a, b = m - i, n - j
                    if 0 <= a < 3 and 0 <= b < 2:
                        seed[i, j] += f[m, n] * g[a, b]
    Z = conv2d.forward_loops(g[None, None], f[None, :, :, None], np.zeros(1), 1, 0, np.empty((1, height_out, width_out, 1)))
    assert_close(Z[0, :, :, 0], seed)


def central_differences(J, args, which, eps):
    """(J(.., a + eps e_k, ..) - J(.., a - eps e_k, ..)) / 2 eps for every element k of args[which]."""
    value = args[which]
    fd = np.empty_like(value)
    for idx in np.ndindex(value.shape):
        plus, minus = list(args), list(args)
        plus[which], minus[which] = value.copy(), value.copy()
        plus[which][idx] += eps
        minus[which][idx] -= eps
        fd[idx] = (J(*plus) - J(*minus)) / (2 * eps)
    return fd


@given(c=cases(max_hw=5))
def test_gradients_match_central_differences(c):
    """∂J/∂A_prev, ∂J/∂K, ∂J/∂b (loops) equal central differences of J = Σ G ⊙ Z(A_prev, K, b).

    J is linear in each argument, so the difference quotient is exact up to rounding.
    """

    def J(A_prev, K, b):
        return float((c.G * conv2d.forward_numpy(K, A_prev, b, c.stride, c.pad, np.empty(c.z_shape))).sum())

    grads = (
        run("input_grad", conv2d.input_grad_loops, c),
        run("kernel_grad", conv2d.kernel_grad_loops, c),
        run("bias_grad", conv2d.bias_grad_loops, c),
    )
    for which, grad in enumerate(grads):
        assert_close(grad, central_differences(J, (c.A_prev, c.K, c.b), which, 1e-3), rtol=1e-8)


# ------------------------------------------------------------------------- PyTorch
def to_nchw(A):
    return np.ascontiguousarray(A.transpose(3, 0, 1, 2))


def to_chwn(A):
    return np.ascontiguousarray(A.transpose(1, 2, 3, 0))


@pytest.mark.torch
@given(c=cases())
def test_matches_torch_conv2d_autograd(c):
    """Forward and the three gradients equal torch.nn.functional.conv2d + autograd in float64 (NCHW <-> CHWN)."""
    torch = pytest.importorskip("torch")
    X = torch.tensor(to_nchw(c.A_prev), requires_grad=True)
    K = torch.tensor(c.K, requires_grad=True)
    b = torch.tensor(c.b, requires_grad=True)
    Z = torch.nn.functional.conv2d(X, K, b, stride=c.stride, padding=c.pad)
    Z.backward(torch.tensor(to_nchw(c.G)))
    rtol = 1e-10
    assert_close(run("forward", conv2d.forward_loops, c), to_chwn(Z.detach().numpy()), rtol)
    assert_close(run("kernel_grad", conv2d.kernel_grad_loops, c), K.grad.numpy(), rtol)
    assert_close(run("bias_grad", conv2d.bias_grad_loops, c), b.grad.numpy(), rtol)
    assert_close(run("input_grad", conv2d.input_grad_loops, c), to_chwn(X.grad.numpy()), rtol)


# --------------------------------------------------------------------------- layer
@pytest.mark.parametrize("engine", ["literal", "numpy", "fast"])
def test_layer_engines_agree_with_loops(engine):
    """Conv2D forward/backward (tanh) under each engine matches the exact loops engine (literal: bit for bit)."""
    rng = np.random.default_rng(11)
    layer = Conv2D(3, (3, 2), stride=2, pad=1, activation="tanh")
    X = rng.standard_normal((2, 6, 5, 3))
    params = layer.init_params(X.shape[:-1], rng, np.float64)
    Delta = rng.standard_normal((3,) + layer.output_shape(X.shape[:-1])[1:] + (3,))
    ref_cache = layer.forward(params, X, "loops")
    ref = layer.backward(params, ref_cache, Delta, "loops")
    cache = layer.forward(params, X, engine)
    got = layer.backward(params, cache, Delta, engine)
    pairs = [(cache.A, ref_cache.A), (got.Delta_prev, ref.Delta_prev)] + list(zip(got.grads, ref.grads))
    for a, r in pairs:
        if engine == "literal":
            np.testing.assert_array_equal(a, r)
        else:
            assert_close(a, r)


def test_layer_backward_matches_central_differences():
    """With a sigmoid activation, the layer's ∂J/∂K, ∂J/∂b and Δ^(l-1) match central differences of J = Σ G ⊙ A."""
    rng = np.random.default_rng(5)
    layer = Conv2D(2, 3, stride=1, pad=1, activation="sigmoid")
    X = rng.standard_normal((2, 4, 5, 2))
    K, b = layer.init_params(X.shape[:-1], rng, np.float64)
    b = rng.standard_normal(b.shape)
    G = rng.standard_normal((2, 4, 5, 2))
    out = layer.backward((K, b), layer.forward((K, b), X, "loops"), G, "loops")

    def J(X_, K_, b_):
        return float((G * layer.forward((K_, b_), X_, "numpy").A).sum())

    for which, grad in enumerate((out.Delta_prev,) + out.grads):
        assert_close(grad, central_differences(J, (X, K, b), which, 1e-6), rtol=1e-7)


def test_layer_shapes_init_and_config():
    """Output shape follows eq. C3, He init has std √(2/(C_in·kh·kw)), and to_config rebuilds an equal layer."""
    layer = Conv2D(16, (3, 3), stride=2, pad=1, activation="relu")
    assert layer.output_shape((4, 9, 8)) == (16, 5, 4)
    assert layer.param_shapes((4, 9, 8)) == ((16, 4, 3, 3), (16,))
    K, b = layer.init_params((4, 9, 8), np.random.default_rng(0), np.float32)
    assert K.dtype == np.float32 and K.flags.c_contiguous and not b.any()
    assert abs(K.std() - np.sqrt(2 / 36)) < 0.1 * np.sqrt(2 / 36)
    config = layer.to_config()
    assert config.pop("kind") == "conv2d"
    assert Conv2D(**config) == layer
    assert layer.spec() == "conv2d 16 3x3 stride 2 pad 1 relu"


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Conv2D(2, 3, stride=0), r"stride: expected an integer >= 1, got 0"),
        (lambda: Conv2D(2, 3, pad=-1), r"pad: expected an integer >= 0, got -1"),
        (lambda: Conv2D(2, 0), r"kernel_size: expected an integer >= 1, got 0"),
        (lambda: Conv2D(2, 3, activation="softmax"), r"activation: expected one of .*got 'softmax'"),
        (lambda: Conv2D(2, 5, pad=0).output_shape((1, 4, 6)), r"kernel_size: .*\(4, 6\), got \(kh, kw\) = \(5, 5\)"),
        (lambda: Conv2D(2, 3).output_shape((4, 6)), r"conv2d input: expected a \(C, height, width\) sample shape"),
        (lambda: check_conv_geometry((3, 5, 5), (3, 3), 1, 0, in_channels=2), r"expected C_in = 2 channels .*got 3"),
    ],
)
def test_layer_errors_name_the_argument(make, match):
    """Bad geometry raises a ValueError naming the argument, the expected and the actual value."""
    with pytest.raises(ValueError, match=match):
        make()


def test_forward_rejects_mismatched_channels():
    """Kernels made for 3 input channels refuse a 2-channel batch before any kernel runs."""
    layer = Conv2D(2, 3)
    params = layer.init_params((3, 5, 5), np.random.default_rng(0), np.float64)
    with pytest.raises(ValueError, match=r"C_in = 3 .*got 2"):
        layer.forward(params, np.zeros((2, 5, 5, 1)), "numpy")


def test_flatten_is_a_free_reshape():
    """Flatten views (C, H, W, N) as (C·H·W, N) without copying (eq. P6); backward reshapes Δ back (P7)."""
    X = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
    layer = Flatten()
    assert layer.output_shape((2, 3, 4)) == (24,)
    cache = layer.forward((), X, "loops")
    assert np.shares_memory(cache.A, X) and cache.A.shape == (24, 5)
    assert cache.A[(1 * 3 + 2) * 4 + 3, 4] == X[1, 2, 3, 4]
    back = layer.backward((), cache, cache.A * 2, "loops")
    np.testing.assert_array_equal(back.Delta_prev, 2 * X)
    assert layer.to_config() == {"kind": "flatten"} and layer.spec() == "flatten"
