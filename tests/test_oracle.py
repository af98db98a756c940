"""The reference oracle: right numbers (finite differences), every layout, clear refusals."""
import re

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
        elif act == "softplus":
            A = np.log1p(np.exp(Z))
        elif act == "softmax":
            E = np.exp(Z - Z.max(axis=1, keepdims=True))
            A = E / E.sum(axis=1, keepdims=True)
        elif act == "identity":
            A = Z
        else:
            raise ValueError(f"numpy_loss: no plain-NumPy form of activation {act!r}")
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
    (lambda W, b, X, Y: oracle.dense(W, b, ["tanh", "tanh"], "cross_entropy", X, Y), r"loss: .cross_entropy. needs the model to end in a softmax"),
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
    with pytest.raises(ValueError, match=r"layers\[1\]: log_softmax is supported as the last entry"):
        oracle.network(["flatten", "log_softmax", "linear"], [(np.ones((2, 72)), np.zeros(2))], "NLLLoss", X, Y[:, :2])
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
    assert report.worst.rel_error == pytest.approx(0.5 / 6.0, rel=1e-6)  # relative to the numeric reference
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
    A (-Y/(N S), (1/N)(-Y/A + (1-Y)/(1-A)), 2c(A - Y)), and the three engines agree to rounding."""
    Ws, bs, acts, loss, X, Y = problem
    r = oracle.dense(Ws, bs, acts, loss, X, Y)
    A, N = r.A[-1], X.shape[0]
    expected = {"cross_entropy": lambda: -Y / (N * A),
                "binary_cross_entropy": lambda: (-Y / A + (1 - Y) / (1 - A)) / N,
                "mse": lambda: 2 * (A - Y) / N, "half_se": lambda: A - Y, "euclidean": lambda: (A - Y) / N}[loss]()
    np.testing.assert_allclose(r.Delta[-1], expected, rtol=1e-9, atol=1e-300)
    for e in ("literal", "numpy"):
        np.testing.assert_allclose(oracle.dense(Ws, bs, acts, loss, X, Y, engine=e).Delta[-1], r.Delta[-1],
                                   rtol=1e-12, atol=1e-15)  # A^(L) itself may differ by rounding across forms


# ------------------------------------------------------------- gradcheck and NaN / Inf
@pytest.mark.parametrize("case", ["nan gradient", "inf gradient", "nan value", "nan at a step"])
def test_gradcheck_fails_on_any_nan_or_inf_naming_where(case):
    """A NaN or ±inf in an analytic gradient, in f's value, or in f at a step of the central
    difference fails the check (it passed with 'gradients match' before), and the report
    says where: the argument and index, or f's value."""
    x = np.array([1.0, 2.0, 3.0])
    g = 2 * x
    f = lambda x: float(np.sum(x ** 2))  # noqa: E731
    if case == "nan gradient":
        g[1] = np.nan
        where = "x[1]"
    elif case == "inf gradient":
        g[2] = -np.inf
        where = "x[2]"
    elif case == "nan value":
        f = lambda x: float("nan")  # noqa: E731
        where = "f at the given point returns nan"
    else:
        f = lambda x: float(np.sum(x ** 2)) if x[0] <= 1.0 else float("nan")  # noqa: E731
        where = "central difference at x[0]"
    report = oracle.gradcheck(f, {"x": x}, {"x": g})
    assert not report.ok and "DO NOT match" in str(report) and "gradients match" not in str(report)
    assert where in str(report), str(report)
    with pytest.raises(AssertionError, match="NOT FINITE"):
        oracle.gradcheck(f, {"x": x}, {"x": g}, raise_on_failure=True)


def test_gradcheck_samples_200_elements_by_default_and_reports_worst_absolute_error():
    """By default a seeded random sample of 200 elements is checked one by one (the same 200
    for the same seed), max_elements=None checks all; when the worst element sits on a zero
    reference (rel error inf) the report also names the worst absolute error."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(500)
    calls = []

    def f(x):
        calls.append(1)
        return float(np.sum(x ** 3))

    report = oracle.gradcheck(f, {"x": x}, {"x": 3 * x ** 2})
    assert report.ok and report.n_checked == 200 and report.n_elements == 500
    assert len(calls) == 1 + 2 * 200 + 2 * 3
    assert "random sample (seed 0) of 200 of 500 elements" in str(report)
    assert oracle.gradcheck(f, {"x": x}, {"x": 3 * x ** 2}, max_elements=None).n_checked == 500
    y = np.array([0.0, 1.0, 2.0])
    g = np.array([1e-9, 2.0, 4.0 + 1e-3])  # d/dy Σ y² = (0, 2, 4): a tiny error on the zero, a larger one on 4
    report = oracle.gradcheck(lambda y: float(np.sum(y ** 2)), {"y": y}, {"y": g}, atol=0, rtol=1e-6)
    assert report.worst.index == (0,) and report.worst.rel_error == np.inf
    assert report.worst_abs.index == (2,) and "worst absolute: y[2]" in str(report)


# ------------------------------------------------------------ descriptions: refusals and spellings
@pytest.mark.parametrize("entry, named", [
    ({"type": "conv2d", "dilation": 2}, "dilation=2"),
    ({"type": "conv2d", "groups": 2}, "groups=2"),
    ({"type": "conv2d", "padding_mode": "reflect"}, "padding_mode='reflect'"),
    ({"type": "conv2d", "bias": False}, "bias=False"),
    ({"type": "conv2d", "pading": 1}, "unknown option 'pading'"),
])
def test_unknown_or_unsupported_conv_options_are_refused_by_name(rng, entry, named):
    """A description option indexnet does not compute is refused, naming it (it was silently
    ignored, so the reference was for another function)."""
    params, X, Y = conv_problem(rng)
    with pytest.raises(ValueError, match=r"layers\[0\] \(conv2d\).*" + re.escape(named)):
        oracle.network([entry] + CONV_SPEC[1:], params, "cross_entropy", X, Y)


@pytest.mark.parametrize("entry, named", [
    ({"type": "maxpool2d", "kernel_size": 2, "ceil_mode": True}, "ceil_mode=True"),
    ({"type": "maxpool2d", "kernel_size": 2, "dilation": 2}, "dilation=2"),
    ({"type": "maxpool2d", "kernel_size": 2, "strides": 2}, "unknown option 'strides'"),
])
def test_unknown_or_unsupported_pool_options_are_refused_by_name(rng, entry, named):
    params, X, Y = conv_problem(rng)
    with pytest.raises(ValueError, match=r"layers\[2\] \(maxpool2d\).*" + re.escape(named)):
        oracle.network(CONV_SPEC[:2] + [entry] + CONV_SPEC[3:], params, "cross_entropy", X, Y)


def test_linear_without_bias_and_typos_in_activations_are_refused(rng):
    W = rng.standard_normal((2, 3))
    X, Y = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    with pytest.raises(ValueError, match=r"layers\[0\] \(linear\) bias=False: not supported"):
        oracle.network([{"type": "linear", "bias": False}], [(W, np.zeros(2))], "mse", X, Y)
    with pytest.raises(ValueError, match=r"layers\[1\] \(tanh\): unknown option 'negative_slope'"):
        oracle.network(["linear", {"type": "tanh", "negative_slope": 0.1}], [(W, np.zeros(2))], "mse", X, Y)


def test_one_leaky_relu_spelling_everywhere_with_a_checked_slope(rng):
    """("leaky_relu", 0.3), {"type": "leaky_relu", "negative_slope": 0.3} work in both
    oracle.dense and oracle.network and give the same numbers; a NaN or inf slope is refused
    by name in both."""
    W, b = rng.standard_normal((3, 2)), rng.standard_normal(3)
    X, Y = rng.standard_normal((5, 2)), rng.standard_normal((5, 3))
    spellings = [("leaky_relu", 0.3), {"type": "leaky_relu", "negative_slope": 0.3}, ("LeakyReLU", 0.3)]
    results = [oracle.dense([W], [b], [s], "mse", X, Y) for s in spellings]
    results += [oracle.network(["linear", s], [(W, b)], "mse", X, Y) for s in spellings]
    for r in results[1:]:
        oracle.assert_gradients_match(r.to_dict(), results[0].to_dict(), rtol=0)
    Z = X @ W.T + b
    np.testing.assert_allclose(results[0].A[0], np.where(Z > 0, Z, 0.3 * Z), rtol=1e-14)
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match=r"activations\[0\] negative_slope: expected a finite number"):
            oracle.dense([W], [b], [("leaky_relu", bad)], "mse", X, Y)
        with pytest.raises(ValueError, match=r"layers\[1\] negative_slope: expected a finite number"):
            oracle.network(["linear", ("leaky_relu", bad)], [(W, b)], "mse", X, Y)


def test_errors_name_the_weight_bias_or_loss_at_fault(rng):
    """A kernel that does not fit its input, a bias of the wrong size and a loss whose output
    activation is missing are reported under their own names (they were all blamed on X)."""
    params, X, Y = conv_problem(rng)
    bad = [params[0], (rng.standard_normal((2, 5, 2, 2)), params[1][1]), params[2]]
    with pytest.raises(ValueError, match=r"^params\[1\] weight: layer 3 \(conv2d"):
        oracle.network(CONV_SPEC, bad, "cross_entropy", X, Y)
    with pytest.raises(ValueError, match=r"^params\[2\] bias: expected shape \(3,\), \(1, 3\) or \(3, 1\)"):
        oracle.network(CONV_SPEC, params[:2] + [(params[2][0], np.zeros(4))], "cross_entropy", X, Y)
    with pytest.raises(ValueError, match=r"^loss: 'binary_cross_entropy' needs the model to end in a sigmoid"):
        oracle.network(CONV_SPEC, params, "binary_cross_entropy", X, Y)
    with pytest.raises(ValueError, match=r"^loss: 'CrossEntropyLoss' takes logits"):
        oracle.network(CONV_SPEC, params, "CrossEntropyLoss", X, Y)


# ----------------------------------------------------------------- feature-map outputs
@pytest.mark.parametrize("last", [{"type": "conv2d", "padding": 1}, {"type": "maxpool2d", "kernel_size": 2},
                                  {"type": "avgpool2d", "kernel_size": 2}])
def test_conv_or_pool_as_last_layer_with_squared_losses(rng, last):
    """A network ending in a conv or pooling layer (it crashed inside Numba) gives the squared
    losses summed over C×H×W per sample, MSELoss the mean over all N·C·H·W elements, and
    gradients that agree with central differences."""
    K1, b1 = rng.standard_normal((2, 1, 3, 3)) * 0.5, rng.standard_normal(2) * 0.1
    params = [(K1, b1)] + ([(rng.standard_normal((2, 2, 3, 3)) * 0.5, rng.standard_normal(2) * 0.1)]
                           if last["type"] == "conv2d" else [])
    spec = [{"type": "conv2d"}, "tanh", last]
    X = rng.standard_normal((2, 1, 6, 6))
    Y = rng.standard_normal((2, 2, 4, 4) if last["type"] == "conv2d" else (2, 2, 2, 2))  # the output's shape
    r = oracle.network(spec, params, "half_se", X, Y)
    assert r.loss == pytest.approx(0.5 * np.sum((r.A[-1] - Y) ** 2), rel=1e-13)
    m = oracle.network(spec, params, "MSELoss", X, Y)
    assert m.loss == pytest.approx(np.mean((r.A[-1] - Y) ** 2), rel=1e-13)
    names = {f"K{k}": p[0] for k, p in enumerate(params)} | {f"b{k}": p[1] for k, p in enumerate(params)}

    def J(*values):
        ps = [(values[2 * k], values[2 * k + 1]) for k in range(len(params))]
        return oracle.network(spec, ps, "half_se", values[-1], Y, engine="numpy").loss

    args = {}
    for k in range(len(params)):
        args[f"K{k}"], args[f"b{k}"] = names[f"K{k}"], names[f"b{k}"]
    args["X"] = X
    grads = [g for gs in r.grads for g in gs.values()] + [r.dX]
    report = oracle.gradcheck(J, args, grads, atol=1e-7, rtol=1e-5)
    assert report.ok, str(report)


# ------------------------------------------------------------------------- heads
def test_reductions_and_pytorch_names_are_the_seed_formulas_times_a_factor(rng):
    """reduction='sum' is N times the mean for every loss, and every gradient scales with it;
    MSELoss is mse / S_L (mean over all elements); BCELoss binary_cross_entropy / S_L;
    CrossEntropyLoss on logits equals cross_entropy on the softmax output; half_se's
    reduction='mean' is euclidean."""
    N, S = 6, 3
    W, b = rng.standard_normal((S, 4)), rng.standard_normal(S)
    X = rng.standard_normal((N, 4))
    Yr, Yu = rng.standard_normal((N, S)), rng.uniform(0, 1, (N, S))
    labels = rng.integers(0, S, N)

    def same(a, b, factor, rtol=1e-13):
        assert a.loss == pytest.approx(factor * b.loss, rel=rtol)
        for ga, gb in zip(a.grads, b.grads):
            for k in ga:
                np.testing.assert_allclose(ga[k], factor * gb[k], rtol=rtol, atol=1e-15)
        np.testing.assert_allclose(a.dX, factor * b.dX, rtol=rtol, atol=1e-15)

    for loss, act, Y in [("mse", "tanh", Yr), ("euclidean", "tanh", Yr), ("cross_entropy", "softmax", labels),
                         ("binary_cross_entropy", "sigmoid", Yu)]:
        mean = oracle.dense([W], [b], [act], loss, X, Y)
        same(oracle.dense([W], [b], [act], loss, X, Y, reduction="sum"), mean, N)
        assert mean.reduction == "mean" and oracle.dense([W], [b], [act], loss, X, Y, reduction="mean").loss == mean.loss
    same(oracle.dense([W], [b], ["tanh"], "half_se", X, Yr, reduction="mean"),
         oracle.dense([W], [b], ["tanh"], "euclidean", X, Yr), 1)
    same(oracle.dense([W], [b], ["tanh"], "MSELoss", X, Yr), oracle.dense([W], [b], ["tanh"], "mse", X, Yr), 1 / S)
    same(oracle.dense([W], [b], ["sigmoid"], "BCELoss", X, Yu),
         oracle.dense([W], [b], ["sigmoid"], "binary_cross_entropy", X, Yu), 1 / S)
    same(oracle.dense([W], [b], ["identity"], "CrossEntropyLoss", X, labels),
         oracle.dense([W], [b], ["softmax"], "cross_entropy", X, labels), 1)
    same(oracle.dense([W], [b], ["log_softmax"], "NLLLoss", X, labels, reduction="sum"),
         oracle.dense([W], [b], ["softmax"], "cross_entropy", X, labels), N)
    with pytest.raises(ValueError, match=r"reduction: expected one of 'mean', 'sum', got 'none'"):
        oracle.dense([W], [b], ["tanh"], "mse", X, Yr, reduction="none")


def test_soft_labels_equal_the_cross_entropy_of_their_definition(rng):
    """Class probabilities as targets (soft labels; rows summing to 1 or not) give
    J = -(1/N) Σ Y ln softmax(Z) and gradients that agree with finite differences."""
    W, b = rng.standard_normal((3, 2)), rng.standard_normal(3)
    X = rng.standard_normal((4, 2))
    for P in (rng.dirichlet(np.ones(3), 4), rng.uniform(0, 1, (4, 3))):
        r = oracle.dense([W], [b], ["identity"], "CrossEntropyLoss", X, P)
        Z = X @ W.T + b
        logS = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
        assert r.loss == pytest.approx(-np.sum(P * logS) / 4, rel=1e-13)
        J = lambda W_, b_, X_: oracle.dense([W_], [b_], ["identity"], "CrossEntropyLoss", X_, P).loss  # noqa: E731
        report = oracle.gradcheck(J, {"W": W, "b": b, "X": X}, [r.grads[0]["W"], r.grads[0]["b"], r.dX],
                                  atol=1e-8, rtol=1e-6)
        assert report.ok, str(report)


def test_grad_output_is_the_upstream_gradient(rng):
    """grad_output=G computes J = Σ G ⊙ A^(L): Δ^(L) is G itself, and the parameter and
    input gradients agree with finite differences of Σ G ⊙ A^(L)."""
    Ws = [rng.standard_normal((4, 3)), rng.standard_normal((2, 4))]
    bs = [rng.standard_normal(4), rng.standard_normal(2)]
    X, G = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    r = oracle.dense(Ws, bs, ["tanh", "softmax"], None, X, grad_output=G)
    assert np.array_equal(r.Delta[-1], G) and r.loss == pytest.approx(np.sum(G * r.A[-1]), rel=1e-14)
    J = lambda W1, b1, W2, b2, X_: np.sum(G * oracle.dense([W1, W2], [b1, b2], ["tanh", "softmax"], None, X_,  # noqa: E731
                                                           grad_output=G).A[-1])
    grads = [r.grads[0]["W"], r.grads[0]["b"], r.grads[1]["W"], r.grads[1]["b"], r.dX]
    assert oracle.gradcheck(J, param_args(Ws, bs, X), grads, atol=1e-8, rtol=1e-6).ok
    with pytest.raises(ValueError, match=r"grad_output: J = Σ G ⊙ A\^\(L\) replaces the loss"):
        oracle.dense(Ws, bs, ["tanh", "softmax"], "mse", X, grad_output=G)
    with pytest.raises(ValueError, match=r"grad_output: layout='samples_first' with N = 5 needs grad_output of shape"):
        oracle.dense(Ws, bs, ["tanh", "softmax"], None, X, grad_output=G.T)


def test_bias_shapes_come_back_as_given(rng):
    """Biases (out,), (1, out) and (out, 1) give the same numbers; each gradient comes back in
    the shape the caller gave its bias."""
    W, b = rng.standard_normal((3, 2)), rng.standard_normal(3)
    X, Y = rng.standard_normal((4, 2)), rng.standard_normal((4, 3))
    ref = oracle.dense([W], [b], ["tanh"], "mse", X, Y)
    for shape in ((1, 3), (3, 1)):
        r = oracle.dense([W], [b.reshape(shape)], ["tanh"], "mse", X, Y)
        assert r.grads[0]["b"].shape == shape
        assert np.array_equal(r.grads[0]["b"].ravel(), ref.grads[0]["b"]) and r.loss == ref.loss


def test_channels_last_equals_channels_first_transposed(rng):
    """NHWC images with HWIO kernels (and the dense weight after flatten in (H, W, C) order)
    give exactly the numbers of the NCHW network: every image-shaped array transposed, the
    flatten output and the following weight's columns reordered."""
    params, X, Y = conv_problem(rng)
    ref = oracle.network(CONV_SPEC, params, "cross_entropy", X, Y)
    (K1, b1), (K2, b2), (W3, b3) = params
    C, H, W_ = ref.A[3].shape[1:]  # the second pooling's output (layer 4), flattened by layer 5
    W3_hwc = W3.reshape(3, C, H, W_).transpose(0, 2, 3, 1).reshape(3, -1)
    r = oracle.network(CONV_SPEC, [(K1.transpose(2, 3, 1, 0), b1), (K2.transpose(2, 3, 1, 0), b2), (W3_hwc, b3)],
                       "cross_entropy", X.transpose(0, 2, 3, 1), Y, image_layout="channels_last")
    assert r.loss == ref.loss
    assert np.array_equal(r.dX, ref.dX.transpose(0, 2, 3, 1))
    assert np.array_equal(r.grads[0]["K"], ref.grads[0]["K"].transpose(2, 3, 1, 0))
    assert np.array_equal(r.grads[5]["W"], ref.grads[5]["W"].reshape(3, C, H, W_).transpose(0, 2, 3, 1).reshape(3, -1))
    for l in range(4):
        assert np.array_equal(r.A[l], ref.A[l].transpose(0, 2, 3, 1))
    assert np.array_equal(r.A[4], ref.A[4].reshape(3, C, H, W_).transpose(0, 2, 3, 1).reshape(3, -1))
    assert np.array_equal(r.Delta[4], ref.Delta[4].reshape(3, C, H, W_).transpose(0, 2, 3, 1).reshape(3, -1))


def test_oracle_results_do_not_depend_on_the_thread_count(rng):
    """The same conv network with a logits head, a sum reduction and channels-last data gives
    bit-identical results (loss, gradients, every intermediate) with 1 and 2 Numba threads."""
    import numba

    params, X, Y = conv_problem(rng)
    spec = CONV_SPEC[:-1]  # ends in the linear layer: CrossEntropyLoss on logits
    previous = numba.get_num_threads()
    try:
        results = []
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            results.append(oracle.network(spec, params, "CrossEntropyLoss", X, Y.argmax(axis=1), reduction="sum"))
    finally:
        numba.set_num_threads(previous)
    oracle.assert_gradients_match(results[0].to_dict(), results[1].to_dict(), rtol=0)
