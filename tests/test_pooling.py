"""Max and average pooling: the three forms, the tie rule, gradients, PyTorch, layers.

Formulas of derivations/pooling.md: maxpool_forward (P2), maxpool_backward (P3),
avgpool_forward (P4), avgpool_backward (P5). Layout samples last: A_prev (C, height, width, N).
"""
from dataclasses import dataclass

import numba
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from indexnet._jit import fast
from indexnet.kernels import pooling
from indexnet.nn.layers.pooling import AvgPool2D, MaxPool2D

FORMULAS = ("maxpool_forward", "maxpool_backward", "avgpool_forward", "avgpool_backward")


@dataclass
class Case:
    """Input A_prev with distinct values (no ties unless asked), upstream G = ∂J/∂Z, window k, stride s."""

    A_prev: np.ndarray
    G: np.ndarray
    k: int
    stride: int


@st.composite
def cases(draw, max_hw=8):
    """C 1..4, N 1..3, window 1..3, stride 1..3 (overlapping, tiling, gapped windows), H, W k..max_hw."""
    k = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 3))
    C, N = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    height, width = draw(st.integers(k, max_hw)), draw(st.integers(k, max_hw))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    # a permutation of well-separated values: every window has one clear maximum
    X = rng.permutation(C * height * width * N).reshape(C, height, width, N) * 0.5 - 7.0
    height_out, width_out = (height - k) // stride + 1, (width - k) // stride + 1
    return Case(A_prev=X, G=rng.standard_normal((C, height_out, width_out, N)), k=k, stride=stride)


def big_case(seed=1):
    """C = 3, 8 × 9 inputs, N = 17 (the loops' innermost loops over samples vectorize), k = 2, s = 2."""
    rng = np.random.default_rng(seed)
    A_prev = rng.permutation(3 * 8 * 9 * 17).reshape(3, 8, 9, 17) * 0.5 - 7.0
    return Case(A_prev=A_prev, G=rng.standard_normal((3, 4, 4, 17)), k=2, stride=2)


def run(formula, name, c: Case):
    """One form of ``formula`` on case ``c``; max-pool forward returns (Z, arg)."""
    fn = getattr(pooling, f"{formula}_{name}") if name != "fast" else fast(getattr(pooling, f"{formula}_loops"))
    if formula == "maxpool_forward":
        arg = np.empty(c.G.shape, dtype=np.int64)
        return fn(c.A_prev, c.k, c.stride, np.empty(c.G.shape), arg), arg
    if formula == "avgpool_forward":
        return fn(c.A_prev, c.k, c.stride, np.empty(c.G.shape))
    if formula == "maxpool_backward":
        _, arg = run("maxpool_forward", "numpy", c)
        return fn(c.G, arg, c.k, c.stride, np.empty_like(c.A_prev))
    return fn(c.G, c.k, c.stride, np.empty_like(c.A_prev))


def assert_close(actual, desired, rtol=1e-12):
    """|actual - desired| <= rtol · max(1, max|desired|) elementwise."""
    scale = max(1.0, float(np.abs(desired).max(initial=0.0)))
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=rtol * scale)


def assert_results_close(got, want):
    """Values to rtol 1e-12; a max-pool forward's (Z, arg) pair also needs the same argmax exactly."""
    if isinstance(got, tuple):
        np.testing.assert_array_equal(got[1], want[1])
        got, want = got[0], want[0]
    assert_close(got, want)


@pytest.mark.parametrize("formula", FORMULAS)
@given(c=cases())
@example(c=big_case())
def test_literal_equals_loops_bit_for_bit(formula, c):
    """Literal sums with their deltas and the prange loops give identical bits (and identical argmax)."""
    np.testing.assert_equal(run(formula, "literal", c), run(formula, "loops", c))


@pytest.mark.parametrize("formula", FORMULAS)
@given(c=cases())
@example(c=big_case())
def test_loops_match_numpy(formula, c):
    """Loops and the vectorized window view / tap-by-tap col2im agree (argmax exactly, values to rtol 1e-12)."""
    assert_results_close(run(formula, "loops", c), run(formula, "numpy", c))


@pytest.mark.parametrize("formula", FORMULAS)
def test_fast_build_matches_exact(formula):
    """The fastmath twin agrees with the exact build to rtol 1e-12."""
    rng = np.random.default_rng(4)
    c = Case(A_prev=rng.standard_normal((3, 8, 7, 5)), G=rng.standard_normal((3, 3, 3, 5)), k=3, stride=2)
    assert_results_close(run(formula, "fast", c), run(formula, "loops", c))


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 Numba threads")
@pytest.mark.parametrize("formula", FORMULAS)
def test_loops_independent_of_thread_count(formula):
    """The exact build gives identical bits (and argmax) on 1 and 2 Numba threads."""
    rng = np.random.default_rng(2)
    c = Case(A_prev=rng.standard_normal((4, 8, 8, 6)), G=rng.standard_normal((4, 4, 4, 6)), k=2, stride=2)
    before = numba.get_num_threads()
    try:
        results = [numba.set_num_threads(t) or run(formula, "loops", c) for t in (1, 2)]
    finally:
        numba.set_num_threads(before)
    np.testing.assert_equal(*results)


@pytest.mark.parametrize("name", ["literal", "loops", "numpy"])
def test_ties_go_to_first_maximum_in_row_major_order(name):
    """With equal maxima the winner is the first tap in row-major order, and only it receives the gradient."""
    X = np.zeros((1, 2, 3, 1))
    X[0, 0, 1, 0] = X[0, 1, 0, 0] = X[0, 1, 2, 0] = 5.0  # window 0: taps (0,1), (1,0); window 1: (0,0), (1,1)
    c = Case(A_prev=X, G=np.array([[[[2.0], [3.0]]]]), k=2, stride=1)
    Z, arg = run("maxpool_forward", name, c)
    assert Z.ravel().tolist() == [5.0, 5.0]
    assert arg.ravel().tolist() == [1, 0]
    Delta_prev = run("maxpool_backward", name, c)
    want = np.zeros_like(X)
    want[0, 0, 1, 0] = 2.0 + 3.0  # X[0,0,1] is tap (0,1) of window 0 and tap (0,0) of window 1
    np.testing.assert_array_equal(Delta_prev, want)


@pytest.mark.parametrize("kind", ["max", "avg"])
@given(c=cases(max_hw=5))
def test_backward_matches_central_differences(kind, c):
    """∂J/∂X (loops) equals central differences of J = Σ G ⊙ Z; values are 0.5 apart, so eps never crosses a tie."""
    forward = getattr(pooling, f"{kind}pool_forward_numpy")
    extra = (np.empty(c.G.shape, dtype=np.int64),) if kind == "max" else ()

    def J(X):
        return float((c.G * forward(X, c.k, c.stride, np.empty(c.G.shape), *extra)).sum())

    eps = 1e-3
    fd = np.empty_like(c.A_prev)
    for idx in np.ndindex(c.A_prev.shape):
        plus, minus = c.A_prev.copy(), c.A_prev.copy()
        plus[idx] += eps
        minus[idx] -= eps
        fd[idx] = (J(plus) - J(minus)) / (2 * eps)
    assert_close(run(f"{kind}pool_backward", "loops", c), fd, rtol=1e-9)


@pytest.mark.torch
@pytest.mark.parametrize("kind", ["max", "avg"])
@given(c=cases())
def test_matches_torch_pooling_autograd(kind, c):
    """Forward and ∂J/∂X equal torch max_pool2d / avg_pool2d with autograd in float64 (NCHW <-> CHWN)."""
    torch = pytest.importorskip("torch")
    X = torch.tensor(np.ascontiguousarray(c.A_prev.transpose(3, 0, 1, 2)), requires_grad=True)
    pool = getattr(torch.nn.functional, f"{kind}_pool2d")
    Z = pool(X, c.k, stride=c.stride)
    Z.backward(torch.tensor(np.ascontiguousarray(c.G.transpose(3, 0, 1, 2))))
    ours = run(f"{kind}pool_forward", "loops", c)
    ours = ours[0] if kind == "max" else ours
    assert_close(ours, Z.detach().numpy().transpose(1, 2, 3, 0), rtol=1e-10)
    assert_close(run(f"{kind}pool_backward", "loops", c), X.grad.numpy().transpose(1, 2, 3, 0), rtol=1e-10)


# --------------------------------------------------------------------------- layers
@pytest.mark.parametrize("cls", [MaxPool2D, AvgPool2D])
@pytest.mark.parametrize("engine", ["literal", "numpy", "fast"])
def test_layer_engines_agree_with_loops(cls, engine):
    """Pooling layers give the same output and Δ^(l-1) under every engine (literal: bit for bit)."""
    rng = np.random.default_rng(9)
    layer = cls(3, stride=2)
    X = rng.standard_normal((2, 7, 8, 3))
    Delta = rng.standard_normal((2,) + layer.output_shape(X.shape[:-1])[1:] + (3,))
    ref_cache = layer.forward((), X, "loops")
    ref = layer.backward((), ref_cache, Delta, "loops")
    cache = layer.forward((), X, engine)
    got = layer.backward((), cache, Delta, engine)
    assert got.grads == ()
    for a, r in ((cache.A, ref_cache.A), (got.Delta_prev, ref.Delta_prev)):
        if engine == "literal":
            np.testing.assert_array_equal(a, r)
        else:
            assert_close(a, r)


def test_layer_shapes_and_config():
    """Output shape follows eq. P1, stride defaults to the window, and to_config rebuilds an equal layer."""
    layer = MaxPool2D(2)
    assert layer.stride == 2
    assert layer.output_shape((4, 7, 8)) == (4, 3, 4)
    assert AvgPool2D(3, stride=1).output_shape((1, 5, 3)) == (1, 3, 1)
    for lay in (layer, AvgPool2D(3, stride=1)):
        config = lay.to_config()
        cls = {"maxpool2d": MaxPool2D, "avgpool2d": AvgPool2D}[config.pop("kind")]
        assert cls(**config) == lay
    assert layer.spec() == "maxpool2d 2x2 stride 2"


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: MaxPool2D(3).output_shape((2, 2, 5)), r"size: .*\(height, width\) = \(2, 5\), got k = 3"),
        (lambda: AvgPool2D(2).output_shape((2, 8)), r"pooling input: expected a \(C, height, width\) sample shape"),
        (lambda: MaxPool2D(2, stride=0), r"stride: expected an integer >= 1, got 0"),
        (lambda: AvgPool2D(0), r"size: expected an integer >= 1, got 0"),
    ],
)
def test_layer_errors_name_the_argument(make, match):
    """A window that does not fit, or a bad size/stride, raises a ValueError naming it."""
    with pytest.raises(ValueError, match=match):
        make()
