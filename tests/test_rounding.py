"""Rounding-error bounds (derivations/rounding.md, indexnet/kernels/rounding.py, indexnet/oracle/bounds.py).

What is proved here, cheaply (the full study is examples/rounding_study.py):
- the three forms of every bound kernel agree;
- a bound kernel is its formula's own sum on absolute values (checked against an explicit
  float64 evaluation of that sum);
- R3 itself: a float32 dot product summed in several orders stays within γ_n Σ|x||y|;
- soundness: float32 passes (NumPy engine, and PyTorch when installed) of random dense and
  conv networks stay within the worst-case bound at every element that is not kink-sensitive;
- kinks are found where they are, and only there;
- bad precisions are refused with a message naming the argument.
"""
import numpy as np
import pytest

from indexnet.kernels import rounding as R
from indexnet.kernels.activations import CODES
from indexnet.nn.layers.conv import Conv2D
from indexnet.nn.layers.dense import Dense
from indexnet.nn.layers.flatten import Flatten
from indexnet.nn.layers.pooling import AvgPool2D, MaxPool2D
from indexnet.nn.network import Network
from indexnet.oracle.bounds import Precision, network_bounds

FORMS = ("literal", "loops", "numpy")


def _forms(name):
    return [getattr(R, f"{name}_{f}") for f in FORMS]


def _agree(name, make_args, out_shape, dtype=np.float64):
    outs = [fn(*make_args(), np.empty(out_shape, dtype)) for fn in _forms(name)]
    for f, o in zip(FORMS[1:], outs[1:]):
        np.testing.assert_allclose(o, outs[0], rtol=1e-12, atol=1e-300, err_msg=f"{name}: {f} vs literal")
    return outs[0]


def test_dense_bound_forms_agree_and_are_the_formulas_sums_on_absolute_values():
    """R8, R20-R22: literal, loops and numpy agree, and equal the written sums in float64."""
    rng = np.random.default_rng(0)
    W, A, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 3)), rng.standard_normal(4)
    H, EA, EH = rng.standard_normal((4, 3)), rng.uniform(0, 1e-6, (5, 3)), rng.uniform(0, 1e-6, (4, 3))
    g, tiny = 1e-6, 1e-30
    Ez = _agree("dense_forward_bound", lambda: (W, A, b, EA, g, tiny), (4, 3))
    np.testing.assert_allclose(Ez, np.abs(W) @ (g * np.abs(A) + EA) + g * np.abs(b)[:, None] + tiny, rtol=1e-13)
    Ew = _agree("weight_grad_bound", lambda: (H, A, EH, EA, g, tiny), (4, 5))
    np.testing.assert_allclose(Ew, (g * np.abs(H) + EH) @ np.abs(A).T + np.abs(H) @ EA.T + tiny, rtol=1e-13)
    Eb = _agree("bias_grad_bound", lambda: (H, EH, g, tiny), (4,))
    np.testing.assert_allclose(Eb, (g * np.abs(H) + EH).sum(axis=1) + tiny, rtol=1e-13)
    Ed = _agree("input_grad_bound", lambda: (W, H, EH, g, tiny), (5, 3))
    np.testing.assert_allclose(Ed, np.abs(W).T @ (g * np.abs(H) + EH) + tiny, rtol=1e-13)


def test_conv_and_pool_bound_forms_agree():
    """R23-R29a: the three forms of the conv and pooling bounds agree on a small case."""
    rng = np.random.default_rng(1)
    K, X, b = rng.standard_normal((2, 3, 3, 3)), rng.standard_normal((3, 6, 6, 2)), rng.standard_normal(2)
    EX = rng.uniform(0, 1e-6, X.shape)
    H = rng.standard_normal((2, 4, 4, 2))
    EH = rng.uniform(0, 1e-6, H.shape)
    _agree("conv_forward_bound", lambda: (K, X, b, EX, 1e-6, 1, 0, 0.0), (2, 4, 4, 2))
    _agree("conv_kernel_grad_bound", lambda: (H, X, EH, EX, 1e-6, 1, 0, 0.0), K.shape)
    _agree("conv_bias_grad_bound", lambda: (H, EH, 1e-6, 0.0), (2,))
    _agree("conv_input_grad_bound", lambda: (K, H, EH, 1e-6, 1, 0, 0.0), X.shape)
    _agree("avgpool_bound", lambda: (X, EX, 2, 2, 1e-6, 0.0), (3, 3, 3, 2))
    Hp, EHp = rng.standard_normal((3, 3, 3, 2)), rng.uniform(0, 1e-6, (3, 3, 3, 2))
    _agree("avgpool_backward_bound", lambda: (Hp, EHp, 2, 2, 1e-6, 0.0), X.shape)
    _agree("maxpool_bound", lambda: (EX, 2, 2), (3, 3, 3, 2))
    arg = rng.integers(0, 4, (3, 3, 3, 2))
    _agree("maxpool_backward_bound", lambda: (Hp, EHp, arg, 2, 2, 1e-6, 0.0), X.shape)


@pytest.mark.parametrize("kind", list(CODES))
def test_elementwise_bound_forms_agree(kind):
    """R9-R12: activation, kink, σ' and Hadamard bounds agree across forms for every activation."""
    rng = np.random.default_rng(2)
    Z = rng.standard_normal((3, 4))
    Z[0, 0] = 0.0
    A = {"relu": np.maximum(Z, 0), "leaky_relu": np.where(Z > 0, Z, 0.1 * Z), "sigmoid": 1 / (1 + np.exp(-Z)),
         "tanh": np.tanh(Z), "identity": Z, "softplus": np.logaddexp(0, Z)}[kind]
    EZ = rng.uniform(0, 1e-3, Z.shape)
    code = CODES[kind]
    _agree("activation_bound", lambda: (Z, A, EZ, code, 0.1, 1e-7), Z.shape)
    mask = _agree("kink", lambda: (Z, EZ, code), Z.shape, np.bool_)
    assert mask[0, 0] == (kind in ("relu", "leaky_relu"))
    _agree("activation_grad_bound", lambda: (Z, A, EZ, EZ, code, 6e-8, 5e-7), Z.shape)
    _agree("hadamard_bound", lambda: (Z, A, EZ, EZ, 6e-8), Z.shape)


def test_softmax_and_loss_bound_forms_agree():
    """R13-R19: softmax, its JVP, each Δ^(L), the fused H and the loss-value terms agree across forms."""
    rng = np.random.default_rng(3)
    Z = rng.standard_normal((4, 5))
    S = np.exp(Z) / np.exp(Z).sum(axis=0)
    E = rng.uniform(0, 1e-6, Z.shape)
    Y = np.eye(4)[:, rng.integers(0, 4, 5)]
    u = 2.0**-24
    _agree("softmax_bound", lambda: (Z, S, E, u, 8 * u, 5 * u), Z.shape)
    _agree("softmax_jvp_bound", lambda: (S, Z, E, E, u, 4 * u), Z.shape)
    _agree("squared_error_delta_bound", lambda: (Z, Y, E, 0.4, u), Z.shape)
    _agree("cross_entropy_delta_bound", lambda: (Z, Y, E, u, 8 * u, 4 * u, 0.2), Z.shape)
    P = 1 / (1 + np.exp(-Z))
    P[0, 0], P[1, 1] = 0.0, 1.0  # zero factors skipped
    _agree("binary_cross_entropy_delta_bound", lambda: (Z, P, E, u, 8 * u, 0.2), Z.shape)
    _agree("fused_output_grad_bound", lambda: (S, Y, E, u), Z.shape)
    lse = np.log(np.exp(Z).sum(axis=0))
    for code in (0, 1, 2):
        _agree("loss_value_bound", lambda: (code, Z, S, Y, E, E, lse, E[0], u, 8 * u, 20 * u), Z.shape)


def test_r3_dot_products_in_several_orders_stay_within_gamma_n():
    """R3: float32 dot products of ill-conditioned data, summed forwards, backwards, pairwise
    (NumPy) and with FMA-free products, differ from float64 by at most γ_n Σ|x||y|."""
    rng = np.random.default_rng(4)
    p = Precision("float32")
    for n in (10, 100, 1000):
        x = rng.standard_normal(n) * np.exp(rng.uniform(-5, 5, n))
        y = rng.standard_normal(n)
        x32, y32 = x.astype(np.float32).astype(np.float64), y.astype(np.float32).astype(np.float64)
        exact = float(np.dot(x32, y32))  # float64 of the float32 operands: the sum R3 bounds
        bound = p.gamma(n) * float(np.abs(x32) @ np.abs(y32))
        prods = (x32.astype(np.float32) * y32.astype(np.float32))
        for order in (prods, prods[::-1]):
            acc = np.float32(0)
            for t in order:
                acc = np.float32(acc + t)
            assert abs(float(acc) - exact) <= bound
        assert abs(float(np.dot(x32.astype(np.float32), y32.astype(np.float32))) - exact) <= bound


def _pass32(net, X, Y):
    net32 = Network(net.layers, net.input_shape, net.loss_fn.name, dtype=np.float32,
                    params=[tuple(a.astype(np.float32) for a in p) for p in net.params])
    return net32.backward(X.astype(np.float32), Y.astype(np.float32), "numpy")


def _violations(bp, bq, B):
    """Count elements outside the bound among those that are not kink-sensitive."""
    pairs = [(bq.dX, bp.dX, B.dX, B.kink.dX)]
    for l in range(len(bp.Z)):
        pairs += [(bq.Z[l], bp.Z[l], B.Z[l], B.kink.Z[l]), (bq.A[l], bp.A[l], B.A[l], B.kink.A[l]),
                  (bq.Delta[l], bp.Delta[l], B.Delta[l], B.kink.Delta[l]), (bq.H[l], bp.H[l], B.H[l], B.kink.H[l])]
        pairs += [(bq.grads[l][k], bp.grads[l][k], B.grads[l][k], B.kink.grads[l][k]) for k in bp.grads[l]]
    bad = 0
    for mine, ref, bound, kink in pairs:
        bad += int(((np.abs(mine.astype(np.float64) - ref) > bound) & ~kink).sum())
    bad += abs(float(np.float32(bq.loss)) - bp.loss) > B.loss
    return bad


def _targets(loss, S, N, rng):
    if loss == "cross_entropy":
        return np.ascontiguousarray(np.eye(S)[:, rng.integers(0, S, N)])
    if loss == "binary_cross_entropy":
        return rng.uniform(0, 1, (S, N))
    return rng.standard_normal((S, N))


DENSE_CASES = [
    (["tanh", "relu", "identity"], "mse"), (["softplus", "tanh"], "mse"), (["leaky_relu", "softmax"], "cross_entropy"),
    (["sigmoid", "sigmoid"], "binary_cross_entropy"), (["relu", "softmax"], "half_se"), (["tanh"], "euclidean"),
]


@pytest.mark.parametrize("method", ["worst_case", "probabilistic"])
@pytest.mark.parametrize("acts,loss", DENSE_CASES, ids=[c[1] for c in DENSE_CASES])
def test_float32_dense_passes_stay_within_the_bound(acts, loss, method):
    """Soundness on dense networks: every quantity of a float32 NumPy pass (BLAS, its own
    summation order) is within the bound of R31 at every non-kink element."""
    rng = np.random.default_rng(len(acts) * 7 + len(loss))
    sizes = [12] + [int(s) for s in rng.integers(3, 20, len(acts))]
    net = Network([Dense(s, a) for s, a in zip(sizes[1:], acts)], (sizes[0],), loss, seed=1)
    X, Y = rng.standard_normal((sizes[0], 9)), _targets(loss, sizes[-1], 9, rng)
    bp = net.backward(X, Y)
    B = network_bounds(net, bp, X, Y, Precision("float32", method=method))
    assert _violations(bp, _pass32(net, X, Y), B) == 0


def test_float32_conv_pass_stays_within_the_bound_for_every_engine_form():
    """Soundness on a conv + max-pool + avg-pool network, and the three bound forms agree on it."""
    rng = np.random.default_rng(5)
    layers = [Conv2D(3, 3, pad=1, activation="relu"), MaxPool2D(2), Conv2D(2, 2, activation="tanh"),
              AvgPool2D(1), Flatten(), Dense(3, "softmax")]
    net = Network(layers, (2, 6, 6), "cross_entropy", seed=2)
    X, Y = rng.standard_normal((2, 6, 6, 4)), _targets("cross_entropy", 3, 4, rng)
    bp = net.backward(X, Y)
    B = network_bounds(net, bp, X, Y, "float32")
    assert _violations(bp, _pass32(net, X, Y), B) == 0
    B2 = network_bounds(net, bp, X, Y, "float32", engine="loops")
    np.testing.assert_allclose(B2.grads[0]["K"], B.grads[0]["K"], rtol=1e-12)
    np.testing.assert_allclose(B2.dX, B.dX, rtol=1e-12)


def test_float32_torch_dense_gradients_stay_within_the_bound():
    """Soundness against an independent implementation: PyTorch float32 autograd."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    net = Network([Dense(30, "tanh"), Dense(20, "relu"), Dense(4, "softmax")], (16,), "cross_entropy", seed=3)
    X, Y = rng.standard_normal((16, 24)), _targets("cross_entropy", 4, 24, rng)
    bp = net.backward(X, Y)
    B = network_bounds(net, bp, X, Y, "float32")
    Ws = [torch.tensor(W, dtype=torch.float32, requires_grad=True) for W, _ in net.params]
    bs = [torch.tensor(b, dtype=torch.float32, requires_grad=True) for _, b in net.params]
    A = torch.tensor(X.T, dtype=torch.float32)
    A = torch.tanh(A @ Ws[0].T + bs[0])
    A = torch.relu(A @ Ws[1].T + bs[1])
    Z = A @ Ws[2].T + bs[2]
    J = -(torch.tensor(Y.T, dtype=torch.float32) * torch.log_softmax(Z, 1)).sum() / 24
    J.backward()
    for l in range(3):
        for p, t in (("W", Ws[l]), ("b", bs[l])):
            err = np.abs(t.grad.double().numpy() - bp.grads[l][p])
            assert not ((err > B.grads[l][p]) & ~B.kink.grads[l][p]).any(), (l, p)


def test_kinks_are_masked_where_the_pre_activation_is_within_its_perturbation():
    """R10: a ReLU pre-activation at exactly 0 is kink-sensitive; the element's H is masked,
    the gradients below it keep a finite bound that covers the jump."""
    net = Network([Dense(2, "relu"), Dense(1)], (2,), "half_se", seed=0,
                  params=[(np.array([[1.0, -1.0], [1.0, 1.0]]), np.zeros(2)), (np.array([[1.0, 1.0]]), np.zeros(1))])
    X = np.array([[1.0, 2.0], [1.0, 0.5]])  # sample 0: Z_0 = 0 exactly
    Y = np.zeros((1, 2))
    bp = net.backward(X, Y)
    B = network_bounds(net, bp, X, Y, "float32")
    assert B.kink.H[0].tolist() == [[True, False], [False, False]]
    assert not B.kink.grads[0]["W"].any() and np.isfinite(B.grads[0]["W"]).all()
    # the jump |Δ| (σ' = 1 instead of 0) is inside the bound of ∂J/∂W: W_00 gets Δ_00 X_00
    assert B.grads[0]["W"][0, 0] >= abs(bp.Delta[0][0, 0] * X[0, 0])


def test_probabilistic_bound_is_smaller_and_precision_checks_its_arguments():
    """R30 is tighter than R2 for long sums; a bad name is refused clearly; nu >= 1 has no bound."""
    p, q = Precision("float32"), Precision("float32", method="probabilistic", lam=4)
    assert q.gamma(10_000) * q.lam < p.gamma(10_000) / 10
    assert 0.9993 < Precision("float32", method="probabilistic", lam=4).probability() < 0.9994
    assert Precision("float32").probability() == 1.0
    with pytest.raises(ValueError, match="bounds"):
        Precision("float8")
    assert Precision("float16").gamma(4096) == float("inf")  # nu >= 1: no bound of this kind (R2)


# ------------------------------------------------------------------------- through the oracle
def _oracle_problem():
    rng = np.random.default_rng(7)
    Ws = [rng.standard_normal((8, 5)), rng.standard_normal((3, 8))]
    bs = [rng.standard_normal(8), rng.standard_normal(3)]
    X = rng.standard_normal((6, 5))  # samples first
    labels = rng.integers(0, 3, 6)
    return Ws, bs, X, labels


def _float32_grads(Ws, bs, X, labels, weight_layout):
    """Hand-written float32 gradients (samples first): tanh, then softmax + cross-entropy."""
    W1, W2 = (W.astype(np.float32) for W in Ws)
    b1, b2 = (b.astype(np.float32) for b in bs)
    X = X.astype(np.float32)
    A1 = np.tanh(X @ W1.T + b1)
    Z2 = A1 @ W2.T + b2
    S = np.exp(Z2 - Z2.max(axis=1, keepdims=True))
    S /= S.sum(axis=1, keepdims=True)
    H2 = (S - np.eye(3, dtype=np.float32)[labels]) / np.float32(len(labels))
    H1 = (H2 @ W2) * (1 - A1 * A1)
    grads = {"layer 1": {"W": H1.T @ X, "b": H1.sum(axis=0)}, "layer 2": {"W": H2.T @ A1, "b": H2.sum(axis=0)}}
    if weight_layout == "in_out":
        for g in grads.values():
            g["W"] = g["W"].T
    return grads


@pytest.mark.parametrize("weight_layout", ["out_in", "in_out"])
def test_oracle_returns_bounds_in_the_callers_layout_and_the_check_passes_correct_float32(weight_layout):
    """oracle.dense(..., bounds="float32"): result.bounds and result.kink have the result's
    structure and shapes in the caller's layouts, and correct float32 gradients pass
    assert_gradients_match(..., dtype="float32")."""
    from indexnet import oracle

    Ws, bs, X, labels = _oracle_problem()
    Wc = [W.T.copy() for W in Ws] if weight_layout == "in_out" else Ws
    r = oracle.dense(Wc, bs, ["tanh", "softmax"], "cross_entropy", X, labels, weight_layout=weight_layout,
                     bounds="float32")
    assert r.precision == "float32" and r.bound_method == "worst_case"
    for name in ("Z", "A", "Delta", "H"):
        for v, b, m in zip(getattr(r, name), getattr(r.bounds, name), getattr(r.kink, name)):
            assert v.shape == b.shape == m.shape and m.dtype == bool and (b >= 0).all()
    assert r.bounds.dX.shape == r.dX.shape == X.shape
    for g, b in zip(r.grads, r.bounds.grads):
        assert {k: v.shape for k, v in g.items()} == {k: v.shape for k, v in b.items()}
    oracle.assert_gradients_match(_float32_grads(Ws, bs, X, labels, weight_layout), r, dtype="float32")


def test_bound_check_names_the_element_the_bound_and_how_far_over():
    """An element off by a relative 1e-3 fails the float32 bound check; the message names the
    array, the index, the bound and how many times over the bound the error is. Asking for a
    dtype the reference has no bounds for is a ValueError naming the argument."""
    from indexnet import oracle

    Ws, bs, X, labels = _oracle_problem()
    r = oracle.dense(Ws, bs, ["tanh", "softmax"], "cross_entropy", X, labels, bounds="float32")
    bad = _float32_grads(Ws, bs, X, labels, "out_in")
    bad["layer 1"]["W"][2, 3] *= 1 + 1e-3
    with pytest.raises(AssertionError) as err:
        oracle.assert_gradients_match(bad, r, dtype="float32")
    msg = str(err.value)
    assert "layer 1 / W: 1 of 40 element(s) over the float32 worst-case bound" in msg
    assert "index (2, 3)" in msg and "times the bound" in msg
    with pytest.raises(ValueError, match="reference"):
        oracle.assert_gradients_match(bad, oracle.dense(Ws, bs, ["tanh", "softmax"], "cross_entropy", X, labels),
                                      dtype="float32")
    with pytest.raises(ValueError, match="dtype"):
        oracle.assert_gradients_match(bad, r, dtype="float16")


def test_network_oracle_bounds_for_a_conv_net_in_nchw():
    """oracle.network(..., bounds="float32") on a conv + max-pool net given NCHW: the bounds
    come back in NCHW (dX shaped like X) and a float32 pass of the same net is within them."""
    from indexnet import oracle

    rng = np.random.default_rng(8)
    K, bK = rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    W, bW = rng.standard_normal((4, 3 * 3 * 3)), rng.standard_normal(4)
    desc = [{"type": "conv2d"}, "tanh", {"type": "maxpool2d", "kernel_size": 2}, "flatten", "linear", "softmax"]
    X = rng.standard_normal((5, 2, 8, 8))
    labels = rng.integers(0, 4, 5)
    r = oracle.network(desc, [(K, bK), (W, bW)], "cross_entropy", X, labels, bounds="float32")
    assert r.bounds.dX.shape == r.kink.dX.shape == X.shape
    assert r.bounds.grads[0]["K"].shape == K.shape
    layers = [Conv2D(3, 3, activation="tanh"), MaxPool2D(2), Flatten(), Dense(4, "softmax")]
    net = Network(layers, (2, 8, 8), "cross_entropy", params=[(K, bK), (), (), (W, bW)])
    Xsl = np.ascontiguousarray(np.moveaxis(X, 0, -1))
    g32 = _pass32(net, Xsl, np.ascontiguousarray(np.eye(4)[:, labels])).grads
    mine = {"layer 1": g32[0], "layer 4": g32[3]}
    oracle.assert_gradients_match(mine, r, dtype="float32")


def test_sums_too_long_for_the_precision_have_an_infinite_bound_never_nan():
    """R2: in bfloat16 (u = 2^-8) a sum of 300 terms has nu >= 1 and no bound; the elements it
    reaches get inf (never NaN, which would pass every comparison silently)."""
    rng = np.random.default_rng(9)
    net = Network([Dense(4, "relu"), Dense(2)], (300,), "mse", seed=0)
    X = rng.standard_normal((300, 3))
    X[:, 0] = 0.0  # exact zeros: inf · 0 must not become NaN
    Y = rng.standard_normal((2, 3))
    B = network_bounds(net, net.backward(X, Y), X, Y, "bfloat16")
    assert np.isinf(B.Z[0]).all() and not any(np.isnan(g).any() for gr in B.grads for g in gr.values())
