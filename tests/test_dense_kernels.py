"""Dense kernels (derivations/dense.md): the three forms against each other and against
finite differences.

Tolerances used here:

* literal vs loops: bit for bit (``np.array_equal``) in float64, dense.md §5;
* loops vs numpy: |loops − numpy| ≤ 1e-12 · (the same formula on |inputs|), i.e. rtol
  1e-12 relative to the size of the summed terms, so cancellation cannot fake a failure;
* finite differences: indexnet.oracle.finite_diff (central, G1, and directional, G2), ε = 1e-6,
  rtol 1e-6;
* float32 vs float64 loops: 1e-5 relative to the size of the summed terms (a few dozen
  float32 roundings at most, u₃₂ ≈ 6e-8).
"""
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from indexnet.oracle.finite_diff import check_gradients
from indexnet.kernels import dense

FORMULAS = ("forward", "hadamard", "weight_grad", "bias_grad", "input_grad")

shapes = st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 5))
seeds = st.integers(0, 2**32 - 1)


def layer(shape, seed, dtype=np.float64):
    """A random layer: W (S, S_prev), A_prev (S_prev, N), b (S,), Δ and σ' (S, N)."""
    S, S_prev, N = shape
    g = np.random.default_rng(seed)
    x = {
        "W": g.standard_normal((S, S_prev)),
        "A_prev": g.standard_normal((S_prev, N)),
        "b": g.standard_normal(S),
        "Delta": g.standard_normal((S, N)),
        "dsig": g.uniform(0.0, 1.0, (S, N)),
    }
    x = {k: v.astype(dtype) for k, v in x.items()}
    x["H"] = x["Delta"] * x["dsig"]
    return x


def arguments(formula, x):
    """(literal args, loops/numpy args, output shape) of one formula on layer ``x``."""
    W, A, b, D, s, H = (x[k] for k in ("W", "A_prev", "b", "Delta", "dsig", "H"))
    S, S_prev = W.shape
    N = A.shape[1]
    return {
        "forward": ((W, A, b), (W, A, b), (S, N)),
        "hadamard": ((D, s), (D, s), (S, N)),
        "weight_grad": ((D, s, A), (H, A), (S, S_prev)),
        "bias_grad": ((D, s), (H,), (S,)),
        "input_grad": ((W, H), (W, H), (S_prev, N)),
    }[formula]


def run(formula, form, args, out_shape, dtype=np.float64):
    fn = getattr(dense, f"{formula}_{form}")
    out = np.full(out_shape, np.nan, dtype=dtype)
    result = fn(*args, out)
    assert result is out, f"{formula}_{form} must return its output buffer"
    return out


@pytest.mark.parametrize("formula", FORMULAS)
@given(shape=shapes, seed=seeds)
@example(shape=(9, 11, 37), seed=1)  # rows of 37 samples: the loops' inner loops vectorize
def test_literal_equals_loops_bit_for_bit(formula, shape, seed):
    """The literal sum with its Kronecker deltas kept equals the collapsed loops form
    exactly in float64: the deltas only add exact zeros (dense.md §5)."""
    lit_args, loop_args, out_shape = arguments(formula, layer(shape, seed))
    lit = run(formula, "literal", lit_args, out_shape)
    loops = run(formula, "loops", loop_args, out_shape)
    assert np.array_equal(lit, loops)


@pytest.mark.parametrize("formula", FORMULAS)
@given(shape=shapes, seed=seeds)
@example(shape=(9, 11, 37), seed=1)  # rows of 37 samples: the loops' inner loops vectorize
def test_loops_match_numpy(formula, shape, seed):
    """The loops form equals the matrix (NumPy/BLAS) form to rtol 1e-12, relative to the
    same formula evaluated on the absolute values of its inputs."""
    x = layer(shape, seed)
    _, args, out_shape = arguments(formula, x)
    loops = run(formula, "loops", args, out_shape)
    ref = run(formula, "numpy", args, out_shape)
    _, abs_args, _ = arguments(formula, {k: np.abs(v) for k, v in x.items()})
    size = run(formula, "numpy", abs_args, out_shape)
    assert np.all(np.abs(loops - ref) <= 1e-12 * size)


@given(shape=shapes, seed=seeds)
def test_gradients_match_finite_differences(shape, seed):
    """On J = Σ G ⊙ tanh(W A + b J_Nᵗ), so that Δ = G and σ' = 1 − tanh², the kernels'
    ∂J/∂W (D2.5), ∂J/∂b (D2.10) and ∂J/∂A_prev (D2.25) through H (D2.13) agree with
    central finite differences (G1) and seeded directional tests (G2) of J; no network."""
    x = layer(shape, seed)
    W, A, b, G = x["W"], x["A_prev"], x["b"], x["Delta"]

    def cost(W, b, A):  # plain NumPy, independent of the kernels
        return float(np.sum(G * np.tanh(W @ A + b[:, None])))

    Z = dense.forward_loops(W, A, b, np.empty_like(G))
    H = dense.hadamard_loops(G, 1 - np.tanh(Z) ** 2, np.empty_like(G))
    analytic = (
        dense.weight_grad_loops(H, A, np.empty_like(W)),
        dense.bias_grad_loops(H, np.empty_like(b)),
        dense.input_grad_loops(W, H, np.empty_like(A)),
    )
    check_gradients(cost, (W, b, A), analytic, names=("W", "b", "A_prev"), seed=seed,
                    eps=1e-6, rtol=1e-6, atol=1e-8, raise_on_failure=True)


@pytest.mark.parametrize("formula", FORMULAS)
@given(shape=shapes, seed=seeds)
def test_float32_loops_close_to_float64(formula, shape, seed):
    """The float32 loops form stays within float32 rounding of the float64 result on the
    same (float32-representable) inputs: 1e-5 relative to the size of the terms."""
    x32 = layer(shape, seed, np.float32)
    x64 = {k: v.astype(np.float64) for k, v in x32.items()}
    _, args32, out_shape = arguments(formula, x32)
    _, args64, _ = arguments(formula, x64)
    low = run(formula, "loops", args32, out_shape, np.float32)
    high = run(formula, "loops", args64, out_shape)
    _, abs_args, _ = arguments(formula, {k: np.abs(v) for k, v in x64.items()})
    size = run(formula, "numpy", abs_args, out_shape)
    assert np.all(np.abs(low - high) <= 1e-5 * size)
