"""The reference oracle: right numbers (finite differences), every layout, clear refusals."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexnet import oracle
from indexnet.nn.network import Network
from strategies import architectures, random_targets

@st.composite
def dense_problems(draw):
    """A random dense network (samples first, weights (out, in)) with data for its loss."""
    sizes, acts, loss, kind, N, seed = draw(architectures(max_depth=3, max_size=4))
    rng = np.random.default_rng(seed)
    Ws = [rng.standard_normal((o, i)) for i, o in zip(sizes[:-1], sizes[1:])]
    bs = [rng.standard_normal(o) for o in sizes[1:]]
    X = rng.standard_normal((N, sizes[0]))
    return Ws, bs, acts, loss, X, np.ascontiguousarray(random_targets(kind, sizes[-1], N, rng).T)


def param_args(Ws, bs, X):
    """The oracle's inputs as named arguments for a gradient check."""
    args = {}
    for l, (W, b) in enumerate(zip(Ws, bs), start=1):
        args[f"W{l}"], args[f"b{l}"] = W, b
    args["X"] = X
    return args


def numpy_loss(Ws, bs, acts, loss, X, Y):
    """J written out independently in plain NumPy, samples first (rows), weights (out, in)."""
    A = X
    for W, b, act in zip(Ws, bs, acts):
        Z = A @ W.T + b
        if act == "relu":
            A = np.maximum(Z, 0)
        elif act == "leaky_relu":
            A = np.where(Z > 0, Z, 0.01 * Z)
        elif act == "sigmoid":
            A = 1 / (1 + np.exp(-Z))
        elif act == "tanh":
            A = np.tanh(Z)
        elif act == "softmax":
            E = np.exp(Z - Z.max(axis=1, keepdims=True))
            A = E / E.sum(axis=1, keepdims=True)
        else:
            A = Z
    N = X.shape[0]
    sq = np.sum((A - Y) ** 2)
    if loss == "cross_entropy":
        return -np.sum(Y * np.log(A)) / N
    if loss == "binary_cross_entropy":
        return -np.sum(Y * np.log(A) + (1 - Y) * np.log(1 - A)) / N
    return {"mse": sq / N, "half_se": sq / 2, "euclidean": sq / (2 * N)}[loss]


@given(dense_problems())
def test_dense_oracle_matches_finite_differences(problem):
    """For random dense networks over every activation and every loss, each gradient the
    oracle returns (every W, every b and ∂J/∂X) agrees with central finite differences of
    an independent plain-NumPy J, element by element and along random directions; the
    oracle's loss equals that J."""
    Ws, bs, acts, loss, X, Y = problem
    L = len(Ws)
    result = oracle.dense(Ws, bs, acts, loss, X, Y)
    assert result.loss == pytest.approx(numpy_loss(Ws, bs, acts, loss, X, Y), rel=1e-12, abs=1e-14)

    def J(*values):
        return numpy_loss(values[0:2 * L:2], values[1:2 * L:2], acts, loss, values[-1], Y)

    grads = [g for gs in result.grads for g in (gs["W"], gs["b"])] + [result.dX]
    report = oracle.gradcheck(J, param_args(Ws, bs, X), grads, eps=1e-6, atol=1e-7, rtol=1e-5)
    assert report.ok, str(report)


def as_expected(r: oracle.OracleResult, samples_last: bool, in_out: bool) -> dict:
    """A samples-first, (out, in) result's to_dict() transposed to another layout combination:
    Z, A, Delta, H and dX when the samples go last, W when the weights are (in, out)."""
    def t(key, a):
        return a.T if (key == "W" and in_out) or (key in ("Z", "A", "Delta", "H", "dX") and samples_last) else a

    return {k: ({p: t(p, a) for p, a in v.items()} if isinstance(v, dict) else t(k, v)) for k, v in r.to_dict().items()}


@given(dense_problems())
def test_all_four_layout_combinations_give_the_same_numbers(problem):
    """The same network given samples first / last with weights (out, in) / (in, out)
    returns identical numbers, each array transposed exactly as its layout says: the
    intermediates Z, A, Δ, H and dX come back in the caller's sample layout, the weight
    gradients in the caller's weight layout, biases unchanged."""
    Ws, bs, acts, loss, X, Y = problem
    ref = oracle.dense(Ws, bs, acts, loss, X, Y, layout="samples_first", weight_layout="out_in")
    N = X.shape[0]
    for l, Z in enumerate(ref.Z):
        assert Z.shape == (N, Ws[l].shape[0]) and ref.H[l].shape == Z.shape and ref.A[l].shape == Z.shape
    assert ref.dX.shape == X.shape
    for samples_last in (False, True):
        for in_out in (False, True):
            r = oracle.dense([W.T for W in Ws] if in_out else Ws, bs, acts, loss, X.T if samples_last else X,
                             Y.T if samples_last else Y, layout="samples_last" if samples_last else "samples_first",
                             weight_layout="in_out" if in_out else "out_in")
            assert r.dX.shape == (X.T.shape if samples_last else X.shape)
            oracle.assert_gradients_match(r.to_dict(), as_expected(ref, samples_last, in_out), rtol=0)


def test_oracle_equals_network_backward_in_float64(rng):
    """The oracle is exactly Network.backward with the loops engine on samples-last float64
    data: same loss, gradients and intermediates bit for bit."""
    net = Network.from_sizes([3, 4, 2], ["tanh", "softmax"], "cross_entropy", seed=3)
    X = rng.standard_normal((3, 5))
    Y = np.ascontiguousarray(np.eye(2)[:, rng.integers(0, 2, 5)])
    bp = net.backward(X, Y, "loops")
    r = oracle.dense([p[0] for p in net.params], [p[1] for p in net.params], ["tanh", "softmax"],
                     "cross_entropy", X, Y, layout="samples_last")
    assert r.loss == bp.loss
    for l in range(2):
        for name in ("W", "b"):
            assert np.array_equal(r.grads[l][name], bp.grads[l][name])
        for field in ("Z", "A", "Delta", "H"):
            assert np.array_equal(getattr(r, field)[l], getattr(bp, field)[l])
    assert np.array_equal(r.X, bp.X) and np.array_equal(r.dX, bp.dX)


def test_any_dtype_is_converted_to_float64(rng):
    """Integer, boolean, float32 and list inputs are copied to float64 explicitly: the
    result is float64 and equals the result for the same values given as float64."""
    W = rng.integers(-3, 4, (2, 3))
    b = np.array([1, -1], dtype=np.int32)
    X = rng.integers(-2, 3, (4, 3)).astype(np.int8)
    Y = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], dtype=bool)
    r = oracle.dense([W], [b], ["sigmoid"], "binary_cross_entropy", X, Y)
    f64 = oracle.dense([W.astype(float)], [b.astype(float)], ["sigmoid"], "binary_cross_entropy",
                       X.astype(float), Y.astype(float))
    assert r.grads[0]["W"].dtype == np.float64 and r.dX.dtype == np.float64
    oracle.assert_gradients_match(r.to_dict(), f64.to_dict(), rtol=0)
    X32 = rng.standard_normal((4, 3)).astype(np.float32)
    r32 = oracle.dense([W.tolist()], [b], ["tanh"], "mse", X32, rng.standard_normal((4, 2)).astype(np.float16))
    assert r32.Z[0].dtype == np.float64


def test_class_labels_equal_one_hot_targets(rng):
    """For cross_entropy, integer class labels (N,) give exactly the result of one-hot rows."""
    Ws = [rng.standard_normal((3, 2))]
    X = rng.standard_normal((6, 2))
    labels = rng.integers(0, 3, 6)
    a = oracle.dense(Ws, [np.zeros(3)], ["softmax"], "cross_entropy", X, labels)
    b = oracle.dense(Ws, [np.zeros(3)], ["softmax"], "cross_entropy", X, np.eye(3)[labels])
    oracle.assert_gradients_match(a.to_dict(), b.to_dict(), rtol=0)
    with pytest.raises(ValueError, match=r"Y: expected class labels in \[0, 2\]"):
        oracle.dense(Ws, [np.zeros(3)], ["softmax"], "cross_entropy", X, np.full(6, 3))


def test_result_accessors(rng):
    """grads_dict, grads_flat and to_dict expose the same arrays under their names; torch
    keys follow the equivalent Sequential (identity layers have no activation module)."""
    Ws = [rng.standard_normal((3, 2)), rng.standard_normal((2, 3))]
    r = oracle.dense(Ws, [np.zeros(3), np.zeros(2)], ["identity", "tanh"], "mse", rng.standard_normal((4, 2)),
                     rng.standard_normal((4, 2)))
    assert list(r.grads_dict()) == ["layer 1", "layer 2"]
    assert list(r.grads_dict("torch")) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert r.grads_flat.shape == (3 * 2 + 3 + 2 * 3 + 2,)
    assert np.array_equal(r.grads_flat[:6], r.grads[0]["W"].ravel())
    d = r.to_dict()
    assert set(d["layer 2"]) == {"W", "b", "Z", "A", "Delta", "H"} and d["loss"] == r.loss
    assert d["layer 2"]["A"] is r.A[1] and d["dX"] is r.dX


def test_auto_layout_decides_from_the_shapes(rng):
    """layout='auto' picks the only reading under which X's axis matches the first layer's
    input size (and Y fits), and says which one it chose."""
    Ws = [rng.standard_normal((2, 3))]
    X = rng.standard_normal((5, 3))
    Y = rng.standard_normal((5, 2))
    first = oracle.dense(Ws, [np.zeros(2)], ["identity"], "mse", X, Y, layout="auto")
    last = oracle.dense(Ws, [np.zeros(2)], ["identity"], "mse", X.T, Y.T, layout="auto")
    assert (first.layout, last.layout) == ("samples_first", "samples_last")
    assert np.array_equal(first.dX, last.dX.T)


def test_auto_layout_refuses_ambiguous_shapes_naming_both_readings(rng):
    """With square X and Y both readings fit: the error names both and how to choose."""
    W = [rng.standard_normal((3, 3))]
    with pytest.raises(ValueError) as info:
        oracle.dense(W, [np.zeros(3)], ["identity"], "mse", np.ones((3, 3)), np.ones((3, 3)), layout="auto")
    msg = str(info.value)
    assert "both readings fit" in msg and "samples_first" in msg and "samples_last" in msg
    assert "pass layout=" in msg


def test_auto_layout_refuses_impossible_shapes_naming_what_each_needs(rng):
    """When neither reading fits, the error names both and the shape of X each would need."""
    W = [rng.standard_normal((2, 3))]
    with pytest.raises(ValueError) as info:
        oracle.dense(W, [np.zeros(2)], ["identity"], "mse", np.ones((4, 5)), np.ones((4, 2)), layout="auto")
    msg = str(info.value)
    assert "neither reading fits" in msg
    assert "samples_first would need" in msg and "(N, 3)" in msg
    assert "samples_last would need" in msg and "(3, N)" in msg


@pytest.mark.parametrize("call, match", [
    (lambda W, b, X, Y: oracle.dense(W, b[:1], ["tanh", "tanh"], "mse", X, Y), r"biases: expected 2 \(one per"),
    (lambda W, b, X, Y: oracle.dense(W, b, ["tanh"], "mse", X, Y), r"activations: expected 2"),
    (lambda W, b, X, Y: oracle.dense(W, [b[0], b[0]], ["tanh", "tanh"], "mse", X, Y), r"biases\[1\]: expected shape \(2,\)"),
    (lambda W, b, X, Y: oracle.dense([W[0], W[0]], [b[0], b[0]], ["tanh", "tanh"], "mse", X, Y), r"weights\[1\]: expected 4 inputs"),
    (lambda W, b, X, Y: oracle.dense(W, b, ["tanh", "swish"], "mse", X, Y), r"activations\[1\]: expected one of"),
    (lambda W, b, X, Y: oracle.dense(W, b, ["tanh", "tanh"], "mse", X, Y, layout="rows"), r"layout: expected one of"),
    (lambda W, b, X, Y: oracle.dense(W, b, ["tanh", "tanh"], "mse", X, Y, weight_layout="io"), r"weight_layout: expected"),
    (lambda W, b, X, Y: oracle.dense(W, b, ["tanh", "tanh"], "mse", X, Y, engine="fast"), r"engine: expected one of"),
    (lambda W, b, X, Y: oracle.dense(W, b, ["tanh", "tanh"], "hinge", X, Y), r"loss: expected one of"),
    (lambda W, b, X, Y: oracle.dense(W, b, ["tanh", "tanh"], "mse", X.T, Y), r"X: layout='samples_first' reads X of shape \(3, 5\)"),
    (lambda W, b, X, Y: oracle.dense(W, b, ["tanh", "tanh"], "mse", X, Y.T), r"Y: layout='samples_first' with N = 5 needs Y of shape \(5, 2\)"),
    (lambda W, b, X, Y: oracle.dense(W, b, ["tanh", "tanh"], "cross_entropy", X, Y), r"softmax output layer"),
    (lambda W, b, X, Y: oracle.dense(W, b, ["tanh", "tanh"], "mse", X.astype(complex), Y), r"X: expected real numbers"),
])
def test_bad_arguments_are_named(rng, call, match):
    """Every refusal names the argument, what was expected and what was given."""
    W = [rng.standard_normal((4, 3)), rng.standard_normal((2, 4))]
    b = [np.zeros(4), np.zeros(2)]
    with pytest.raises((ValueError, TypeError), match=match):
        call(W, b, rng.standard_normal((5, 3)), rng.standard_normal((5, 2)))


# ----------------------------------------------------------------------- conv networks
CONV_SPEC = [
    {"type": "conv2d", "padding": 1}, "relu",
    {"type": "maxpool2d", "kernel_size": 2},
    {"type": "conv2d", "stride": 1}, ("tanh"),
    {"type": "avgpool2d", "kernel_size": 2},
    "flatten",
    {"type": "linear", "out_features": 3}, "softmax",
]


def conv_problem(rng, N=3):
    """A small conv net in PyTorch's layouts: NCHW input, (out, in, kh, kw) kernels."""
    params = [
        (rng.standard_normal((3, 2, 3, 3)) * 0.5, rng.standard_normal(3) * 0.1),
        (rng.standard_normal((2, 3, 2, 2)) * 0.5, rng.standard_normal(2) * 0.1),
        (rng.standard_normal((3, 2)), rng.standard_normal(3) * 0.1),
    ]
    X = rng.standard_normal((N, 2, 6, 6))
    Y = np.eye(3)[rng.integers(0, 3, N)]
    return params, X, Y


def test_conv_oracle_matches_finite_differences(rng):
    """For a conv → max-pool → conv → avg-pool → flatten → dense softmax network given in
    NCHW with (C_out, C_in, kh, kw) kernels, every kernel, bias and input gradient of the
    exact loops build agrees with central finite differences of J computed by the
    independent vectorized NumPy forms."""
    params, X, Y = conv_problem(rng)
    r = oracle.network(CONV_SPEC, params, "cross_entropy", X, Y)

    def J(K1, b1, K2, b2, W3, b3, X_):  # the vectorized NumPy forms of the kernels: an independent forward
        return oracle.network(CONV_SPEC, [(K1, b1), (K2, b2), (W3, b3)], "cross_entropy", X_, Y, engine="numpy").loss

    args = {"K1": params[0][0], "b1": params[0][1], "K2": params[1][0], "b2": params[1][1],
            "W3": params[2][0], "b3": params[2][1], "X": X}
    grads = [r.grads[0]["K"], r.grads[0]["b"], r.grads[2]["K"], r.grads[2]["b"], r.grads[5]["W"], r.grads[5]["b"], r.dX]
    report = oracle.gradcheck(J, args, grads, atol=1e-7, rtol=1e-5)
    assert report.ok, str(report)


def test_conv_layouts_round_trip(rng):
    """NCHW in gives every intermediate back in NCHW; the same data given samples last
    (C, H, W, N) gives the same numbers with the sample axis moved; torch-style keys
    follow the description's entry indices."""
    params, X, Y = conv_problem(rng)
    first = oracle.network(CONV_SPEC, params, "cross_entropy", X, Y)
    last = oracle.network(CONV_SPEC, params, "cross_entropy", np.moveaxis(X, 0, -1), Y.T, layout="samples_last")
    assert first.dX.shape == X.shape and first.Z[0].shape == (3, 3, 6, 6) and first.A[2].shape == (3, 2, 2, 2) and first.A[4].shape == (3, 2)
    assert last.Z[0].shape == (3, 6, 6, 3)
    for l in range(len(first.Z)):
        assert np.array_equal(first.Z[l], np.moveaxis(last.Z[l], -1, 0))
        assert np.array_equal(first.H[l], np.moveaxis(last.H[l], -1, 0))
    oracle.assert_gradients_match(first, last, rtol=0)
    assert list(first.grads_dict("torch")) == ["0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias"]
    by_keys = oracle.network(CONV_SPEC, {"0.weight": params[0][0], "0.bias": params[0][1], "3.weight": params[1][0],
                                         "3.bias": params[1][1], "7.weight": params[2][0], "7.bias": params[2][1]},
                             "cross_entropy", X, Y)
    oracle.assert_gradients_match(by_keys, first, rtol=0)


def test_conv_description_errors_are_named(rng):
    """Descriptions that cannot be built say which entry and why."""
    params, X, Y = conv_problem(rng)
    with pytest.raises(ValueError, match=r"layers\[1\]: activation 'relu' must follow a linear or conv2d"):
        oracle.network(["flatten", "relu", "linear"], [(np.ones((2, 72)), np.zeros(2))], "mse", X, np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"layers\[0\] out_channels: the parameters give 3"):
        oracle.network([{"type": "conv2d", "out_channels": 4}] + CONV_SPEC[1:], params, "cross_entropy", X, Y)
    with pytest.raises(ValueError, match=r"params: expected 3 \(weight, bias\) pair"):
        oracle.network(CONV_SPEC, params + params[:1], "cross_entropy", X, Y)
    with pytest.raises(ValueError, match=r"needs X of shape \(N, 2, H, W\)"):
        oracle.network(CONV_SPEC, params, "cross_entropy", np.moveaxis(X, 0, -1), Y)
    with pytest.raises(ValueError, match=r"layers\[2\] type: expected one of"):
        oracle.network(CONV_SPEC[:2] + [{"type": "dropout"}] + CONV_SPEC[3:], params, "cross_entropy", X, Y)


# --------------------------------------------------------------------------- gradcheck
def test_gradcheck_accepts_a_correct_callable_in_every_calling_form():
    """oracle.gradcheck passes a correct gradient given as a list, a dict, a callable, or
    returned by f itself (grads=None), with positional or named arguments."""
    A = np.array([[2.0, 1.0], [1.0, 3.0]])
    x = np.array([0.5, -1.0])

    def f(x):
        return 0.5 * x @ A @ x

    def fg(x):
        return f(x), [A @ x]

    assert oracle.gradcheck(f, [x], [A @ x]).ok
    assert oracle.gradcheck(f, {"x": x}, {"x": A @ x}).ok
    assert oracle.gradcheck(f, [x], lambda x: [A @ x]).ok
    assert oracle.gradcheck(fg, [x.astype(np.float32)]).ok
    assert oracle.gradcheck(lambda k: float(np.sum(k ** 2)), [np.arange(3)], [2 * np.arange(3)]).ok


def test_gradcheck_report_names_the_worst_element():
    """A wrong gradient fails, and the report names the argument, the index, both values
    and the relative error of the worst element."""
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    y = np.array([0.5])
    wrong = 2 * x
    wrong[1, 0] += 0.5
    report = oracle.gradcheck(lambda x, y: float(np.sum(x ** 2) + y[0] ** 3), {"x": x, "y": y},
                              {"x": wrong, "y": 3 * y ** 2})
    assert not report.ok
    assert report.worst.argument == "x" and report.worst.index == (1, 0)
    assert report.worst.analytic == pytest.approx(6.5) and report.worst.numeric == pytest.approx(6.0)
    assert report.worst.rel_error == pytest.approx(0.5 / 6.5, rel=1e-6)
    assert "x[1, 0]" in str(report) and "rel error" in str(report)
    with pytest.raises(AssertionError, match=r"x\[1, 0\]"):
        oracle.gradcheck(lambda x: float(np.sum(x ** 2)), {"x": x}, {"x": wrong}, raise_on_failure=True)


def test_gradcheck_refuses_non_scalar_functions_and_bad_grads():
    """f must return a scalar; grads keyed unlike args are refused by name."""
    with pytest.raises(TypeError, match=r"f: expected a scalar value"):
        oracle.gradcheck(lambda x: x * 2, [np.ones(2)], [np.ones(2)])
    with pytest.raises(ValueError, match=r"grads: expected keys \['x'\]"):
        oracle.gradcheck(lambda x: float(x.sum()), {"x": np.ones(2)}, {"z": np.ones(2)})


# ------------------------------------------------------------------ Δ^(L) at saturation
ENGINES = ("literal", "loops", "numpy")


def test_output_error_is_exact_at_saturation_in_every_engine():
    """Δ^(L) is computed from Z (L6b, L9b): sigmoid + binary cross-entropy at Z = 800, Y = 1
    gives exactly -1/N (dividing by 1 - A = 0 gave NaN, and ZeroDivisionError in the literal
    build); softmax + cross-entropy with T_k = 0 where A_k has underflowed to 0 gives exactly
    0 (it gave NaN or -inf). Every engine returns the same finite numbers."""
    N = 4
    X = np.array([[800.0], [-800.0], [3.0], [0.0]])
    Y = np.array([[1.0], [0.0], [1.0], [0.25]])
    out = {e: oracle.dense([np.eye(1)], [np.zeros(1)], ["sigmoid"], "binary_cross_entropy", X, Y, engine=e)
           for e in ENGINES}
    for e, r in out.items():
        D = r.Delta[-1]
        assert np.all(np.isfinite(D)) and D[0, 0] == -1 / N and D[1, 0] == 1 / N, e
        assert np.array_equal(D, out["loops"].Delta[-1]) and np.array_equal(r.H[-1], out["loops"].H[-1]), e
    a = 1 / (1 + np.exp(-3.0))
    assert out["loops"].Delta[-1][2, 0] == pytest.approx(-1 / (N * a), rel=1e-15)

    Xs = np.array([[1000.0, 0.0], [0.0, 0.0]])  # sample 0: A_2 = e^-1000 = 0 in float64
    Ys = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    W = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    res = {e: oracle.dense([W], [np.zeros(3)], ["softmax"], "cross_entropy", Xs, Ys, engine=e) for e in ENGINES}
    for e, r in res.items():
        D = r.Delta[-1]
        assert r.A[-1][0, 1] == 0.0 and D[0, 1] == 0.0 and D[0, 2] == 0.0 and D[0, 0] == -1 / 2, e
        assert np.all(np.isfinite(D)) and np.array_equal(D, res["loops"].Delta[-1]), e
    assert res["loops"].Delta[-1][1, 1] == -3 / 2  # Z = (0, 0, 0): 1/S = 3, Δ = -Y/(N S)


@given(dense_problems())
def test_output_error_from_z_equals_the_textbook_formula(problem):
    """Away from saturation Δ^(L) from Z (L6b, L9b) equals L4 / L6 / L9 written in NumPy from
    A (-Y/(N S), (1/N)(-Y/A + (1-Y)/(1-A)), 2c(A - Y)), and the three engines agree."""
    Ws, bs, acts, loss, X, Y = problem
    r = oracle.dense(Ws, bs, acts, loss, X, Y)
    A, N = r.A[-1], X.shape[0]
    expected = {"cross_entropy": lambda: -Y / (N * A),
                "binary_cross_entropy": lambda: (-Y / A + (1 - Y) / (1 - A)) / N,
                "mse": lambda: 2 * (A - Y) / N, "half_se": lambda: A - Y, "euclidean": lambda: (A - Y) / N}[loss]()
    np.testing.assert_allclose(r.Delta[-1], expected, rtol=1e-9, atol=1e-300)
    # literal: the same sums in the same order; numpy: BLAS rounds Z^(L) differently, and an
    # entry of Δ that cancels (A ≈ Y) keeps only the absolute accuracy of the largest one
    scale = np.abs(r.Delta[-1]).max()
    for e, rtol in (("literal", 1e-14), ("numpy", 1e-12)):
        np.testing.assert_allclose(oracle.dense(Ws, bs, acts, loss, X, Y, engine=e).Delta[-1], r.Delta[-1],
                                   rtol=rtol, atol=rtol * scale)
