"""Activations, their derivatives and softmax (derivations/activations.md).

Tolerances used here:

* literal vs loops: bit for bit for A0, A6 and S1; for the softmax JVP (S3)
  2γ_{K+2} S_in(|Δ_in| + Σ_k |Δ_kn| S_kn), the bound derived in activations.md S3
  (γ_m = mu/(1 − mu)), for K up to 1000;
* σ' of the sigmoid and tanh (A6, from Z): within 8u of an 80-bit long double reference
  for every z, saturation included;
* loops vs numpy: rtol 1e-12 (NumPy's exp/tanh may differ from libm's in the last bit);
* finite differences: central, ε = 1e-6, rtol 1e-6 (gradcheck.md G1, G3; for softmax via
  indexnet.oracle.finite_diff, which adds the directional test G2).
"""
import warnings

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from indexnet.oracle.finite_diff import check_gradients
from indexnet.kernels import activations as act
from indexnet.kernels import losses

ALPHA = 0.1
KINDS = sorted(act.CODES)
shapes = st.tuples(st.integers(1, 6), st.integers(1, 5))
seeds = st.integers(0, 2**32 - 1)


def draw(shape, seed, scale=3.0):
    """Z with entries away from the ReLU kink (|z| ≥ 0.01), so differences never cross it."""
    g = np.random.default_rng(seed)
    Z = g.uniform(0.01, scale, shape) * g.choice([-1.0, 1.0], shape)
    return Z, g.standard_normal(shape)


def apply(form, Z, kind):
    return getattr(act, f"activation_{form}")(Z, act.CODES[kind], ALPHA, np.empty_like(Z))


def derivative(form, Z, kind):
    A = apply("loops", Z, kind)
    return getattr(act, f"activation_grad_{form}")(Z, A, act.CODES[kind], ALPHA, np.empty_like(Z))


def softmax(form, Z):
    return getattr(act, f"softmax_{form}")(Z, np.empty_like(Z))


def jvp(form, S, Delta):
    return getattr(act, f"softmax_jvp_{form}")(S, Delta, np.empty_like(S))


# ------------------------------------------------------------------- elementwise (A0–A6)
@pytest.mark.parametrize("kind", KINDS)
@given(shape=shapes, seed=seeds)
@example(shape=(9, 37), seed=1)  # rows of 37 samples: the loops' inner loops vectorize
def test_activation_forms_agree(kind, shape, seed):
    """σ (A0) and σ' (A6): literal equals loops bit for bit; loops equals numpy to rtol 1e-12."""
    Z, _ = draw(shape, seed)
    assert np.array_equal(apply("literal", Z, kind), apply("loops", Z, kind))
    np.testing.assert_allclose(apply("loops", Z, kind), apply("numpy", Z, kind), rtol=1e-12, atol=0)
    assert np.array_equal(derivative("literal", Z, kind), derivative("loops", Z, kind))
    np.testing.assert_allclose(derivative("loops", Z, kind), derivative("numpy", Z, kind), rtol=1e-12, atol=0)


@pytest.mark.parametrize("kind", KINDS)
@given(shape=shapes, seed=seeds)
def test_derivative_matches_finite_differences(kind, shape, seed):
    """σ'(Z) of A6 equals the central difference (σ(Z+ε) − σ(Z−ε))/2ε of A1–A5, elementwise."""
    Z, _ = draw(shape, seed)
    eps = 1e-6
    numeric = (apply("loops", Z + eps, kind) - apply("loops", Z - eps, kind)) / (2 * eps)
    np.testing.assert_allclose(derivative("loops", Z, kind), numeric, rtol=1e-6, atol=1e-9)


def test_relu_derivative_at_zero_is_the_stated_convention():
    """A6's convention: relu'(0) = 0 (seed 000 eq. 9's 'else'), leaky relu'(0) = α."""
    Z = np.zeros((2, 3))
    for form in ("literal", "loops", "numpy"):
        assert np.array_equal(derivative(form, Z, "relu"), np.zeros_like(Z))
        assert np.array_equal(derivative(form, Z, "leaky_relu"), np.full_like(Z, ALPHA))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_saturates_without_overflow(dtype):
    """A4b: at z = ±1000 every form returns exactly 1 and 0, with no overflow warning."""
    Z = np.array([[1000.0, -1000.0], [40.0, -800.0]], dtype=dtype)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        for form in ("literal", "loops", "numpy"):
            A = apply(form, Z, "sigmoid")
            assert A[0, 0] == 1 and A[0, 1] == 0 and A[1, 1] == 0, form
            assert np.all(np.isfinite(A)), form


# ------------------------------------------------------------------------ softmax (S1)
@given(shape=shapes, seed=seeds, shift=st.floats(-50, 50))
@example(shape=(12, 40), seed=1, shift=3.5)  # rows of 37 samples: the loops' inner loops vectorize
def test_softmax_forms_and_properties(shape, seed, shift):
    """S1: literal equals loops bit for bit, loops equals numpy to rtol 1e-12, each column
    sums to 1, and adding a constant to a column leaves S unchanged (to rounding)."""
    Z, _ = draw(shape, seed)
    S = softmax("loops", Z)
    assert np.array_equal(softmax("literal", Z), S)
    np.testing.assert_allclose(S, softmax("numpy", Z), rtol=1e-12, atol=0)
    np.testing.assert_allclose(S.sum(axis=0), 1.0, rtol=0, atol=1e-15 * Z.shape[0])
    shifted = Z + shift * np.arange(1, Z.shape[1] + 1)
    np.testing.assert_allclose(softmax("loops", shifted), S, rtol=1e-12, atol=1e-300)


def test_softmax_does_not_overflow():
    """S1's max shift: logits of 1000 give finite probabilities, equal to those of Z − 1000."""
    Z = np.array([[1000.0, 1000.0, -1000.0], [999.0, 1000.0, 1000.0], [0.0, -5.0, 1000.0]])
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        for form in ("literal", "loops", "numpy"):
            S = softmax(form, Z)
            assert np.all(np.isfinite(S)), form
            np.testing.assert_allclose(S, softmax(form, Z - 1000.0), rtol=1e-15, atol=0)
    np.testing.assert_allclose(softmax("loops", Z)[:, 1], [0.5, 0.5, 0.0], atol=1e-300)


# ------------------------------------------------------------------ softmax JVP (S2, S3)
def jacobian(s):
    """The K × K matrix ∂s_i/∂z_j = s_i(δ_ij − s_j) of S2, built entry by entry."""
    K = s.shape[0]
    return np.array([[s[i] * ((i == j) - s[j]) for j in range(K)] for i in range(K)])


def gamma(m):
    """γ_m = mu/(1 − mu), u = 2^-53 (rounding.md R2)."""
    u = 2.0**-53
    return m * u / (1 - m * u)


@given(shape=shapes, seed=seeds)
@example(shape=(12, 40), seed=5)  # rows long enough for the loops' inner loops to vectorize
def test_softmax_jvp_forms(shape, seed):
    """S3: literal vs loops within the bound 2γ_{K+2}·S_in(|Δ_in| + Σ_k |Δ_kn| S_kn) of
    activations.md; loops vs numpy within 1e-12 of the same size; and each column equals
    (∂s/∂z)ᵗ Δ with the explicit S2 Jacobian."""
    Z, Delta = draw(shape, seed)
    S = softmax("loops", Z)
    H = jvp("loops", S, Delta)
    size = S * (np.abs(Delta) + (np.abs(Delta) * S).sum(axis=0))
    assert np.all(np.abs(jvp("literal", S, Delta) - H) <= 2 * gamma(shape[0] + 2) * size)
    assert np.all(np.abs(jvp("numpy", S, Delta) - H) <= 1e-12 * size)
    explicit = np.stack([jacobian(S[:, n]).T @ Delta[:, n] for n in range(Z.shape[1])], axis=1)
    assert np.all(np.abs(explicit - H) <= 1e-12 * size)


@pytest.mark.parametrize("K", [1, 2, 7, 100, 1000])
def test_softmax_jvp_bound_holds_up_to_K_1000(K):
    """The S3 bound, for wide logits (some S_kn near 1, most tiny) and a Δ that nearly
    cancels in some entries: each form is within γ_{K+2}·size of the exact H (80-bit long
    double), the two within 2γ_{K+2}·size of each other; and the error is not bounded
    relative to H itself (cancellation), which is why the bound is stated on the size."""
    g = np.random.default_rng(K)
    N = 4
    Z = g.normal(0.0, 4.0, (K, N))
    S = softmax("loops", Z)
    Delta = g.standard_normal((K, N))
    Delta[0] = (Delta * S).sum(axis=0) + 1e-12  # Δ_0n ≈ Σ_k Δ_kn S_kn: H_0n cancels
    size = S * (np.abs(Delta) + (np.abs(Delta) * S).sum(axis=0))
    Sl, Dl = S.astype(np.longdouble), Delta.astype(np.longdouble)
    exact = Sl * (Dl - (Dl * Sl).sum(axis=0))
    lit, loops = jvp("literal", S, Delta), jvp("loops", S, Delta)
    for got in (lit, loops):
        assert np.all(np.abs(got - exact) <= gamma(K + 2) * size)
    assert np.all(np.abs(lit - loops) <= 2 * gamma(K + 2) * size)


@pytest.mark.parametrize("kind", ["sigmoid", "tanh"])
def test_derivative_from_z_is_accurate_at_saturation(kind):
    """A6 takes σ' of the sigmoid and tanh from Z: within 8u of an 80-bit long double
    reference for z in [−40, 40] and far beyond, where the forms from A, A(1 − A) and
    1 − A², lose 1e-3 (sigmoid, z = 30) and 4 % (tanh, z = 18) or give 0 (tanh, |z| ≥ 20)."""
    z = np.concatenate([np.linspace(-40, 40, 4001), [-300.0, -100.0, 100.0, 300.0]]).reshape(1, -1)
    A = apply("loops", z, kind)
    zl = np.abs(z.astype(np.longdouble))
    e = np.exp(-zl) if kind == "sigmoid" else np.exp(-2 * zl)
    ref = (e if kind == "sigmoid" else 4 * e) / (1 + e) ** 2
    for form in ("literal", "loops", "numpy"):
        got = derivative(form, z, kind)
        assert np.all(np.abs(got - ref) <= 8 * 2.0**-53 * ref), form
    at = {30.0: 1e-4} if kind == "sigmoid" else {18.0: 1e-2, 20.0: 0.99}
    for z0, lost in at.items():
        i = int(np.argmin(np.abs(z[0] - z0)))
        from_a = A[0, i] * (1 - A[0, i]) if kind == "sigmoid" else 1 - A[0, i] ** 2
        assert abs(from_a - ref[0, i]) > lost * ref[0, i], (kind, z0)


@given(shape=shapes, seed=seeds)
def test_softmax_jvp_matches_finite_differences(shape, seed):
    """S3 is the gradient of J = Σ G ⊙ softmax(Z): central (G1) and directional (G2)
    differences of J in Z agree."""
    Z, G = draw(shape, seed)
    H = jvp("loops", softmax("loops", Z), G)
    check_gradients(lambda Z: np.sum(G * softmax("numpy", Z)), (Z,), (H,), seed=seed,
                    rtol=1e-6, atol=1e-9, raise_on_failure=True)


@given(shape=shapes, seed=seeds)
def test_jvp_path_equals_fused_shortcut_for_one_hot(shape, seed):
    """With one-hot targets, Δ = −Y/(N S) (L6) through the softmax JVP (S3) equals the fused
    (S − Y)/N of L7, to rounding (1e-13 relative to (S + Y)/N)."""
    K, N = shape
    Z, _ = draw(shape, seed)
    Y = np.eye(K)[:, np.random.default_rng(seed).integers(0, K, N)]
    S = softmax("loops", Z)
    Delta = losses.cross_entropy_delta_loops(S, Y, np.empty_like(S))
    via_jvp = jvp("loops", S, Delta)
    fused = losses.cross_entropy_output_grad_loops(S, Y, np.empty_like(S))
    assert np.all(np.abs(via_jvp - fused) <= 1e-13 * (S + Y) / N)
