"""Loss kernels (derivations/losses.md): values against each seed's own formula, output
errors Δ in three forms and against finite differences, numerical safety, batch reductions.

Tolerances used here:

* values vs the seed's formula in plain NumPy, and loops vs numpy: rtol 1e-12 (every
  term of these sums is non-negative, so there is no cancellation);
* Δ literal vs loops: bit for bit in float64; loops vs numpy: rtol 1e-15;
* finite differences: indexnet.oracle.finite_diff (central, G1, and directional, G2), ε = 1e-6,
  rtol 1e-6.
"""
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from indexnet.oracle.finite_diff import check_gradients
from indexnet.kernels import losses
from indexnet.kernels.activations import softmax_loops

shapes = st.tuples(st.integers(1, 6), st.integers(1, 5))
seeds = st.integers(0, 2**32 - 1)

#: name -> scale of L1 as a function of N (L1a, L2, L3)
SCALES = {"mse": lambda N: 1 / N, "half_se": lambda N: 0.5, "euclidean": lambda N: 1 / (2 * N)}


def problem(shape, seed):
    """A, Y for squared errors; Z, one-hot Y for cross-entropy; sigmoid A, Y ∈ [0, 1] for BCE.

    Δ of L6 and L9 treats S (or A) as free variables, so their tests use any values well
    inside (0, 1) ("inner"); the fused test goes through Z instead."""
    K, N = shape
    g = np.random.default_rng(seed)
    Z = g.normal(0.0, 2.0, shape)
    return {
        "A": g.standard_normal(shape),
        "Y": g.standard_normal(shape),
        "Z": Z,
        "onehot": np.eye(K)[:, g.integers(0, K, N)],
        "S": softmax_loops(Z, np.empty_like(Z)),
        "sig": 1 / (1 + np.exp(-Z)),
        "prob": g.uniform(0.0, 1.0, shape),
        # well inside (0, 1), where differences of ln S and ln(1 − A) are well conditioned
        "inner": g.uniform(0.2, 0.8, shape),
    }


# ----------------------------------------------------- the seeds' formulas, as written
def seed_squared_error(name, A, Y):
    """mse: seed 000 eq. 2; half_se: seed 002's ½(h − o)² summed over samples;
    euclidean: seed 004 eq. 2.16, 1/(2N) Σ_m ‖a_m − t_m‖²."""
    N = A.shape[1]
    norms = [np.linalg.norm(A[:, m] - Y[:, m]) ** 2 for m in range(N)]
    return {"mse": sum(norms) / N, "half_se": sum(0.5 * q for q in norms), "euclidean": sum(norms) / (2 * N)}[name]


def seed_cross_entropy(Z, Y):
    """Seed 001 §4: L = −Σ_i y_i ln s_i(z) with s_i = e^{z_i}/Σ_k e^{z_k}, mean over samples."""
    S = np.exp(Z) / np.exp(Z).sum(axis=0)
    return -np.mean([np.sum(Y[:, n] * np.log(S[:, n])) for n in range(Z.shape[1])])


def seed_binary_cross_entropy(A, Y):
    """Seed 002 §8 (i) (seed 000 eq. 11 with its sign corrected), mean over samples."""
    return -np.sum(Y * np.log(A) + (1 - Y) * np.log(1 - A)) / A.shape[1]


def squared_error(A, Y, name):
    return losses.squared_error_value_loops(A, Y, SCALES[name](A.shape[1]))


@pytest.mark.parametrize("name", sorted(SCALES))
@given(shape=shapes, seed=seeds)
def test_squared_error_values(name, shape, seed):
    """L1 with the scale of L1a/L2/L3 equals the seed's own formula; loops equals numpy."""
    p = problem(shape, seed)
    value = squared_error(p["A"], p["Y"], name)
    assert value == pytest.approx(seed_squared_error(name, p["A"], p["Y"]), rel=1e-12)
    scale = SCALES[name](shape[1])
    assert value == pytest.approx(losses.squared_error_value_numpy(p["A"], p["Y"], scale), rel=1e-12)


@given(shape=shapes, seed=seeds)
def test_cross_entropy_values(shape, seed):
    """L5 from Z via log-sum-exp equals −(1/N) Σ Y ln softmax(Z) where that is well
    conditioned, for one-hot and for soft targets; loops equals numpy."""
    p = problem(shape, seed)
    for Y in (p["onehot"], p["prob"]):
        value = losses.cross_entropy_value_loops(p["Z"], Y)
        assert value == pytest.approx(seed_cross_entropy(p["Z"], Y), rel=1e-12)
        assert value == pytest.approx(losses.cross_entropy_value_numpy(p["Z"], Y), rel=1e-12)


@given(shape=shapes, seed=seeds)
def test_binary_cross_entropy_values(shape, seed):
    """L8 from Z, (1/N) Σ [softplus(Z) − Y Z], equals the naive −(1/N) Σ [Y ln σ + (1−Y) ln(1−σ)]."""
    p = problem(shape, seed)
    value = losses.binary_cross_entropy_value_loops(p["Z"], p["prob"])
    assert value == pytest.approx(seed_binary_cross_entropy(p["sig"], p["prob"]), rel=1e-12)
    assert value == pytest.approx(losses.binary_cross_entropy_value_numpy(p["Z"], p["prob"]), rel=1e-12)


def test_cross_entropies_stay_finite_for_huge_logits():
    """L5 and L8 evaluated from Z never take ln 0: for logits of ±1000 the values are finite
    and equal their exact limits (softmax and sigmoid outputs underflow to 0 there)."""
    Z = np.array([[1000.0, -1000.0], [0.0, 1000.0], [-1000.0, 0.0]])
    Y = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # sample 0: −ln s_2 = 1000 + ln(1 + e^{−1000} + e^{−2000}); sample 1: −ln s_3 = 1000 + ...
    for ce in (losses.cross_entropy_value_loops, losses.cross_entropy_value_numpy):
        assert ce(Z, Y) == pytest.approx(1000.0, rel=1e-15)
    z = np.array([[1000.0, -1000.0, 1000.0, -1000.0]])
    y = np.array([[1.0, 0.0, 0.0, 1.0]])
    # per element softplus(z) − y z: 0, 0, 1000, 1000
    for bce in (losses.binary_cross_entropy_value_loops, losses.binary_cross_entropy_value_numpy):
        assert bce(z, y) == pytest.approx(500.0, rel=1e-15)


# ------------------------------------------------------------------ output errors (Δ)
def deltas(p, N):
    """name -> (formula, args without the output buffer, value as a function of the first arg)."""
    scale = SCALES["mse"](N)
    onehot, prob = p["onehot"], p["prob"]
    return {
        "squared_error": ("squared_error_delta", (p["A"], p["Y"], scale),
                          lambda A: losses.squared_error_value_numpy(A, p["Y"], scale)),
        "cross_entropy": ("cross_entropy_delta", (p["inner"], onehot),
                          lambda S: -np.sum(onehot * np.log(S)) / N),
        "binary_cross_entropy": ("binary_cross_entropy_delta", (p["inner"], prob),
                                 lambda A: seed_binary_cross_entropy(A, prob)),
    }


def form(formula, which, args):
    return getattr(losses, f"{formula}_{which}")(*args, np.empty_like(args[0]))


@pytest.mark.parametrize("loss", ["squared_error", "cross_entropy", "binary_cross_entropy"])
@given(shape=shapes, seed=seeds)
@example(shape=(9, 37), seed=1)  # rows of 37 samples: the loops' inner loops vectorize
def test_output_errors(loss, shape, seed):
    """Δ of L4, L6, L9: literal equals loops bit for bit, loops equals numpy (rtol 1e-15),
    and both equal central finite differences (G1) and directional tests (G2) of the loss
    value in A (or S)."""
    formula, args, value = deltas(problem(shape, seed), shape[1])[loss]
    loops = form(formula, "loops", args)
    assert np.array_equal(form(formula, "literal", args), loops)
    np.testing.assert_allclose(form(formula, "numpy", args), loops, rtol=1e-15, atol=0)
    check_gradients(value, (args[0],), (loops,), seed=seed, rtol=1e-6, atol=1e-8, raise_on_failure=True)


@given(shape=shapes, seed=seeds)
@example(shape=(10, 40), seed=3)  # rows of 40 samples: the loops' inner loop vectorizes
def test_fused_output_grads_are_the_gradient_in_z(shape, seed):
    """L7 (softmax + cross-entropy) and L7b (sigmoid + binary cross-entropy), each its own
    kernel: the collapsed (A − Y)/N of the loops form is ∂(L5)/∂Z with A = softmax(Z) and
    one-hot Y, and ∂(L8)/∂Z with A = σ(Z) and any Y ∈ [0, 1], by finite differences (G1, G2)
    of the value kernels; numpy equals loops bit for bit; and the literal form, the unreduced
    chain rule (L6 then S3, or L9 then A6 through D2.13), equals the collapsed result to
    16 ulps of (A + Y)/N. They are not bit-identical: the literal form divides by A and
    multiplies back, which is exactly the arithmetic the collapse removes."""
    p = problem(shape, seed)
    N = shape[1]
    cases = (
        ("cross_entropy_output_grad", p["S"], p["onehot"], lambda Z: losses.cross_entropy_value_loops(Z, p["onehot"])),
        ("binary_cross_entropy_output_grad", p["sig"], p["prob"],
         lambda Z: losses.binary_cross_entropy_value_loops(Z, p["prob"])),
    )
    eps = np.finfo(np.float64).eps
    for formula, A, Y, value in cases:
        H = form(formula, "loops", (A, Y))
        assert np.array_equal(form(formula, "numpy", (A, Y)), H)
        literal = form(formula, "literal", (A, Y))
        assert np.all(np.abs(literal - H) <= 16 * eps * (A + Y) / N), formula
        # ε = 1e-5: J is O(1) while H is O(1/N), so a smaller step drowns H in the rounding of J
        check_gradients(value, (p["Z"],), (H,), seed=seed, eps=1e-5, rtol=1e-6, atol=1e-9, raise_on_failure=True)


def test_softmax_literal_output_grad_needs_no_normalised_targets():
    """The literal L7 is the unreduced chain rule, so for targets whose columns do not sum
    to 1 it is still ∂J/∂Z = (S Σ_k Y_k − Y)/N (the middle expression of L7), while the
    collapsed (S − Y)/N is not; the two agree only when Σ_k Y_kn = 1."""
    p = problem((4, 3), 11)
    Y = 2.0 * p["onehot"]
    literal = form("cross_entropy_output_grad", "literal", (p["S"], Y))
    np.testing.assert_allclose(literal, (p["S"] * Y.sum(axis=0) - Y) / 3, rtol=1e-14, atol=1e-16)
    assert not np.allclose(form("cross_entropy_output_grad", "loops", (p["S"], Y)), literal)


# ------------------------------------------------------------------- batch reductions
@given(shape=shapes, seed=seeds, copies=st.integers(2, 4))
def test_batch_reductions(shape, seed, copies):
    """half_se sums over samples (N copies of one sample cost N times as much); mse,
    euclidean, cross-entropy and binary cross-entropy take the mean (duplicating the batch
    leaves them unchanged)."""
    p = problem(shape, seed)

    def tile(X):
        return np.ascontiguousarray(np.tile(X, copies))

    one = np.ascontiguousarray(p["A"][:, :1]), np.ascontiguousarray(p["Y"][:, :1])
    repeated = [np.ascontiguousarray(np.repeat(x, copies, axis=1)) for x in one]
    assert squared_error(*repeated, "half_se") == pytest.approx(copies * squared_error(*one, "half_se"), rel=1e-13)
    for name in ("mse", "euclidean"):
        assert squared_error(tile(p["A"]), tile(p["Y"]), name) == pytest.approx(
            squared_error(p["A"], p["Y"], name), rel=1e-13)
    for value, Y in ((losses.cross_entropy_value_loops, p["onehot"]),
                     (losses.binary_cross_entropy_value_loops, p["prob"])):
        assert value(tile(p["Z"]), tile(Y)) == pytest.approx(value(p["Z"], Y), rel=1e-13)
