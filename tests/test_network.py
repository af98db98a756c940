"""The assembled network: engines agree, gradients are right, bad input is refused."""
import numpy as np
import pytest
from hypothesis import given

from indexnet.oracle.finite_diff import check_gradients, check_network
from indexnet.nn.network import Network
from strategies import architectures, random_targets

def networks():
    """Random dense networks of depth 1-4 over every activation and loss head."""
    return architectures(max_depth=4, max_size=5)


#: smallest |Z| allowed at a ReLU or leaky-ReLU unit: the finite differences (ε = 1e-6)
#: move a pre-activation by ε·|∂Z/∂θ|, far less than this (gradcheck.md, Kinks)
KINK_MARGIN = 1e-3


def kink_distance(net, X):
    """The smallest |Z_in| over the ReLU-family layers of ``net`` at input X (∞ if none)."""
    caches = net.forward(X, "loops")
    near = [np.abs(c.Z).min() for layer, c in zip(net.layers, caches)
            if getattr(layer, "activation", None) in ("relu", "leaky_relu")]
    return min(near, default=np.inf)


def make(sizes, acts, loss, kind, N, seed):
    """A network, an input X whose pre-activations all keep KINK_MARGIN from the ReLU kink
    (X is redrawn until they do), and targets."""
    rng = np.random.default_rng(seed)
    net = Network.from_sizes(sizes, acts, loss, seed=seed)
    for attempt in range(1000):
        X = rng.standard_normal((sizes[0], N))
        if kink_distance(net, X) >= KINK_MARGIN:
            break
        if attempt % 10 == 9:
            # zero biases pin a ReLU unit at Z = 0 for every X once all its inputs are dead
            # (a chain of single ReLU units); nonzero biases move it off the kink
            for layer, (_, b) in zip(net.layers, net.params):
                if layer.activation in ("relu", "leaky_relu"):
                    b[:] = rng.uniform(-0.5, 0.5, b.shape)
    else:  # pragma: no cover
        raise AssertionError("no input keeps the ReLU units away from the kink")
    return net, X, random_targets(kind, sizes[-1], N, rng)


def test_make_keeps_relu_units_away_from_the_kink():
    """The promise of make(): every ReLU pre-activation is at least KINK_MARGIN from 0, also
    for a chain of single ReLU units, which zero biases pin at the kink whatever X is."""
    for seed in range(20):
        for sizes, acts in (([3, 4, 4, 2], ["relu", "leaky_relu", "identity"]), ([1, 1, 1, 1], ["relu"] * 3)):
            net, X, _ = make(sizes, acts, "mse", "real", 1 + seed % 4, seed)
            assert kink_distance(net, X) >= KINK_MARGIN


def test_seed_002_network_has_30_parameters():
    """Seed 002 §3 counts (2x3+3) + (3x4+4) + (4x1+1) = 30 parameters for 2-3-4-1."""
    net = Network.from_sizes([2, 3, 4, 1], ["relu", "relu", "identity"], "half_se")
    assert net.n_params == 30
    assert net.param_counts() == [9, 16, 5]


def test_seed_001_network_shapes():
    """Seed 001's 784-800-10 net (corrected from 768 inputs) has 784·800+800 + 800·10+10 parameters."""
    net = Network.from_sizes([784, 800, 10], ["relu", "softmax"], "cross_entropy")
    assert net.n_params == 784 * 800 + 800 + 800 * 10 + 10
    assert net.params[0][0].shape == (800, 784) and net.params[1][0].shape == (10, 800)


def assert_same(a, b, exact):
    """Bit for bit, or (after a softmax JVP) to rtol 1e-12 of the largest entry."""
    if exact:
        assert np.array_equal(a, b)
    else:
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * max(1.0, float(np.abs(b).max())))


@given(networks())
def test_literal_equals_loops_bit_for_bit(case):
    """Through a whole network of depth 1-4, the literal and loops engines give identical
    loss, Z, A, Δ, H, parameter gradients and ∂J/∂X in float64 (with a softmax output the
    literal JVP differs by rounding, activations.md S3: H, the gradients and the Δ below
    it then compare to rtol 1e-12)."""
    net, X, Y = make(*case)
    a = net.backward(X, Y, "literal", fused=False)
    b = net.backward(X, Y, "loops", fused=False)
    exact = "softmax" not in case[1]
    assert a.loss == b.loss
    for l in range(len(net.layers)):
        assert np.array_equal(a.Z[l], b.Z[l]) and np.array_equal(a.A[l], b.A[l])
        assert_same(a.Delta[l], b.Delta[l], exact or l == len(net.layers) - 1)
        assert_same(a.H[l], b.H[l], exact)
        for name in ("W", "b"):
            assert_same(a.grads[l][name], b.grads[l][name], exact)
    assert_same(a.dX, b.dX, exact)


@given(networks())
def test_loops_match_numpy(case):
    """Loops and numpy engines agree within rtol 1e-12 (atol 1e-14) on loss, gradients and ∂J/∂X."""
    net, X, Y = make(*case)
    a = net.backward(X, Y, "loops")
    b = net.backward(X, Y, "numpy")
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-12)
    for l in range(len(net.layers)):
        for name in ("W", "b"):
            np.testing.assert_allclose(a.grads[l][name], b.grads[l][name], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(a.dX, b.dX, rtol=1e-12, atol=1e-14)


@given(networks())
def test_gradients_match_finite_differences_and_directional_test(case):
    """Every parameter gradient and ∂J/∂X agree with central differences (G1) and with
    seed 002 §9's directional test (G2), for every loss and depth."""
    net, X, Y = make(*case)
    report = check_network(net, X, Y, "loops", eps=1e-6, atol=1e-7, rtol=1e-5)
    assert report.ok, str(report)


@pytest.mark.parametrize("loss,act", [("cross_entropy", "softmax"), ("binary_cross_entropy", "sigmoid")])
def test_fused_output_gradient_equals_the_long_way(loss, act, rng):
    """H^(L) = (A - Y)/N (L7) equals Δ^(L) (L6/L9) pushed through the activation's
    Jacobian (S3/D2.13), for every parameter, to rounding."""
    net = Network.from_sizes([4, 5, 3], ["tanh", act], loss)
    X = rng.standard_normal((4, 6))
    Y = np.ascontiguousarray(np.eye(3)[:, rng.integers(0, 3, 6)])
    a = net.backward(X, Y, "loops", fused=True)
    b = net.backward(X, Y, "loops", fused=False)
    for l in range(2):
        for name in ("W", "b"):
            np.testing.assert_allclose(a.grads[l][name], b.grads[l][name], rtol=1e-10, atol=1e-15)


def test_fast_engine_close_to_exact(rng):
    """The fastmath build may reassociate sums; every gradient, Δ, H and ∂J/∂X stays within
    1e-12 of the exact build's largest entry in float64."""
    net = Network.from_sizes([30, 20, 10], ["relu", "softmax"], "cross_entropy")
    X = rng.standard_normal((30, 17))
    Y = np.ascontiguousarray(np.eye(10)[:, rng.integers(0, 10, 17)])
    a, b = net.backward(X, Y, "loops"), net.backward(X, Y, "fast")
    pairs = [(a.dX, b.dX)] + [(getattr(a, k)[l], getattr(b, k)[l]) for k in ("Delta", "H") for l in range(2)]
    pairs += [(a.grads[l][n], b.grads[l][n]) for l in range(2) for n in ("W", "b")]
    for exact, got in pairs:
        np.testing.assert_allclose(got, exact, rtol=1e-12, atol=1e-12 * float(np.abs(exact).max()))


def test_float32_network_tracks_float64(rng):
    """A float32 network computes the same loss as float64 within float32 rounding."""
    net64 = Network.from_sizes([8, 6, 3], ["tanh", "softmax"], "cross_entropy")
    params32 = [tuple(a.astype(np.float32) for a in p) for p in net64.params]
    net32 = Network(net64.layers, (8,), "cross_entropy", dtype=np.float32, params=params32)
    X = rng.standard_normal((8, 5))
    Y = np.ascontiguousarray(np.eye(3)[:, rng.integers(0, 3, 5)])
    assert abs(net32.loss(X.astype(np.float32), Y.astype(np.float32)) - net64.loss(X, Y)) < 1e-5


def test_check_gradients_reports_the_worst_element():
    """A deliberately wrong gradient fails, naming the argument, index and both values."""
    f = lambda x, y: float(np.sum(x**2) + 3 * np.sum(y))  # noqa: E731
    x, y = np.arange(4.0).reshape(2, 2), np.ones(3)
    wrong = [2 * x, np.full(3, 3.0)]
    wrong[0][1, 0] += 0.5
    report = check_gradients(f, [x, y], wrong, names=["x", "y"])
    assert not report.ok
    assert report.worst.argument == "x" and report.worst.index == (1, 0)
    assert report.worst.analytic == pytest.approx(4.5) and report.worst.numeric == pytest.approx(4.0)
    with pytest.raises(AssertionError, match=r"x\[1, 0\]"):
        check_gradients(f, [x, y], wrong, names=["x", "y"], raise_on_failure=True)


# ----------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def clf():
    return Network.from_sizes([4, 3], ["softmax"], "cross_entropy")


def _onehot(cols):
    return np.ascontiguousarray(np.eye(3)[:, cols])


@pytest.mark.parametrize(
    "X,Y,err,match",
    [
        (np.zeros((5, 2)), _onehot([0, 1]), ValueError, r"X: expected shape \(4, \*\), got \(5, 2\)"),
        (np.zeros((4, 2), np.float32), _onehot([0, 1]), TypeError, "X: expected dtype float64, got float32"),
        (np.zeros((4, 2), np.int64), _onehot([0, 1]), TypeError, "X: expected dtype"),
        (np.full((4, 2), np.nan), _onehot([0, 1]), ValueError, "X: expected finite values, got nan"),
        (np.full((4, 2), np.inf), _onehot([0, 1]), ValueError, "X: expected finite values, got inf"),
        (np.zeros((2, 4)).T, _onehot([0, 1]), ValueError, "X: expected a C-contiguous array"),
        (np.zeros((4, 0)), np.zeros((3, 0)), ValueError, "X: expected at least 1 sample"),
        (np.zeros((4, 2)), np.ones((3, 2)) / 3, ValueError, "Y: expected one-hot columns"),
        (np.zeros((4, 2)), _onehot([0, 1, 2]), ValueError, r"Y: expected shape \(3, 2\), got \(3, 3\)"),
        ([[0.0]], _onehot([0]), TypeError, "X: expected a numpy.ndarray, got list"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(clf, X, Y, err, match):
    """Wrong shape, dtype, NaN/Inf, non-contiguous, N = 0, non-one-hot targets: a clear
    error naming the argument, the expected and the actual value; nothing is coerced."""
    with pytest.raises(err, match=match):
        clf.backward(X, Y)


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda: Network.from_sizes([3, 2], ["swish"], "mse"), "activation: expected one of .* got 'swish'"),
        (lambda: Network.from_sizes([3, 2], ["relu"], "hinge"), "loss: expected one of .* got 'hinge'"),
        (lambda: Network.from_sizes([3, 2], ["relu"], "cross_entropy"), "needs a softmax output layer"),
        (lambda: Network.from_sizes([3, 2], ["relu", "relu"], "mse"), "activations: expected 1"),
        (lambda: Network.from_sizes([3, 0], ["relu"], "mse"), "units: expected an integer >= 1, got 0"),
    ],
)
def test_bad_architecture_is_refused(build, match):
    """Unknown activation or loss, a loss without its output activation, mismatched lists."""
    with pytest.raises(ValueError, match=match):
        build()


def test_unknown_engine_is_refused(clf):
    """An engine name outside literal/loops/numpy/fast is an error listing the choices."""
    with pytest.raises(ValueError, match="engine: expected one of 'literal', 'loops', 'numpy', 'fast', got 'blas'"):
        clf.forward(np.zeros((4, 1)), "blas")


def test_parameters_are_views_of_one_flat_vector(rng):
    """Network.theta holds every parameter in flat_params order and each array of params is a
    view of it: writing either changes both; set_flat_params writes theta; parameters given
    to the constructor are copied (changing the caller's arrays afterwards changes nothing);
    neither params nor theta can be reassigned."""
    net = Network.from_sizes([3, 4, 2], ["relu", "identity"], "mse", seed=1)
    np.testing.assert_array_equal(net.flat_params(), net.theta)
    assert all(np.shares_memory(a, net.theta) and a.flags.c_contiguous for p in net.params for a in p)
    net.params[1][0][1, 2] = 7.5
    assert net.theta[4 * 3 + 4 + 1 * 4 + 2] == 7.5
    theta = rng.standard_normal(net.n_params)
    net.set_flat_params(theta)
    np.testing.assert_array_equal(net.params[0][0], theta[:12].reshape(4, 3))
    grad = np.arange(net.n_params, dtype=float)  # a vector laid out as theta, viewed as params
    assert [[g.shape for g in p] for p in net.like_theta(grad)] == [[a.shape for a in p] for p in net.params]
    assert net.like_theta(grad)[1][1][0] == 4 * 3 + 4 + 2 * 4
    given = [tuple(a.copy() for a in p) for p in net.params]
    other = Network(net.layers, net.input_shape, "mse", params=given)
    given[0][0][:] = 0.0
    np.testing.assert_array_equal(other.theta, theta)
    with pytest.raises(TypeError):  # an array swapped in would no longer be a view of theta
        net.params[0] = given[0]
    with pytest.raises(AttributeError):
        net.params = given
    with pytest.raises(AttributeError):  # the fast step holds theta's address: it stays the same array
        net.theta = theta
