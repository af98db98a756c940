"""Tiled kernels (indexnet/kernels/tiled.py) against the exact loops forms.

Tolerance: the tiled sums are the same sums reassociated (fastmath, 8 vector partial sums
per register block), so they agree with the exact loops build to rounding:
|tiled − loops| ≤ rtol · Σ|terms| with rtol 1e-12 in float64 and 1e-5 in float32, where
Σ|terms| is the same formula evaluated on |inputs| (so cancellation cannot fake a
failure). Shapes cover every remainder path of the 4 × 2 blocks (M mod 4, Nq mod 2),
and tiny cache tiles force several q tiles.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexnet.kernels import dense, tiled
from indexnet.kernels.activations import CODES, activation_numpy

RTOL = {np.float64: 1e-12, np.float32: 1e-5}
shapes = st.tuples(st.integers(1, 11), st.integers(1, 9), st.integers(1, 7))


def _layer(shape, seed, dtype):
    S, S_prev, N = shape
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((S, S_prev)).astype(dtype), rng.standard_normal((S_prev, N)).astype(dtype),
            rng.standard_normal(S).astype(dtype), rng.standard_normal((S, N)).astype(dtype))


def _close(got, want, scale, dtype):
    assert got.shape == want.shape
    assert np.all(np.abs(got - want) <= RTOL[dtype] * scale + np.finfo(dtype).tiny)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(shape=shapes, seed=st.integers(0, 2**31))
def test_tiled_equal_loops(dtype, shape, seed):
    """forward, weight_grad and input_grad tiled equal the exact loops build within rtol·Σ|terms|."""
    W, A, b, H = _layer(shape, seed, dtype)
    S, S_prev, N = shape
    aW, aA, ab, aH = np.abs(W), np.abs(A), np.abs(b), np.abs(H)
    _close(tiled.forward_tiled(W, A, b, np.empty((S, N), dtype)), dense.forward_loops(W, A, b, np.empty((S, N), dtype)),
           aW @ aA + ab[:, None], dtype)
    _close(tiled.weight_grad_tiled(H, A, np.empty_like(W)), dense.weight_grad_loops(H, A, np.empty_like(W)),
           aH @ aA.T, dtype)
    _close(tiled.input_grad_tiled(W, H, np.empty_like(A)), dense.input_grad_loops(W, H, np.empty_like(A)),
           aW.T @ aH, dtype)


@pytest.mark.parametrize("kind", sorted(CODES))
def test_gemm_fused_activation_and_tiles(kind):
    """gemm_nt with σ fused at the store and 2-row cache tiles equals σ(P Qᵗ + b); 1 and 2 row ranges agree."""
    rng = np.random.default_rng(5)
    P, Q, b = rng.standard_normal((13, 17)), rng.standard_normal((9, 17)), rng.standard_normal(13)
    want = activation_numpy(P @ Q.T + b[:, None], CODES[kind], 0.01, np.empty((13, 9)))
    for T in (1, 2):
        got = tiled.gemm_nt(P, Q, np.empty((13, 9)), b, CODES[kind], 0.01, 2, T)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_transpose_into():
    """transpose_into writes src.T across several 32 × 32 blocks and ragged edges."""
    src = np.arange(70 * 45, dtype=np.float32).reshape(70, 45)
    assert np.array_equal(tiled.transpose_into(src, np.empty((45, 70), np.float32)), src.T)


def test_docstrings_cite_equations():
    """Each public tiled kernel cites its equation and maps the tiles to the sum's indices."""
    for name, eq in (("forward_tiled", "D1.4"), ("weight_grad_tiled", "D2.5"), ("input_grad_tiled", "D2.25")):
        doc = getattr(tiled, name).__doc__
        assert f"derivations/dense.md#{eq}" in doc and "p =" in doc and "q =" in doc and "r =" in doc


@pytest.mark.parametrize("N", [3, tiled.SHORT_BATCH + 3])
def test_weight_grad_both_forms(N):
    """weight_grad_tiled's axpy form (short batch) and dot form (long batch) both equal H Aᵗ."""
    rng = np.random.default_rng(N)
    H, A = rng.standard_normal((10, N)), rng.standard_normal((7, N))
    got = tiled.weight_grad_tiled(H, A, np.empty((10, 7)))
    np.testing.assert_allclose(got, dense.weight_grad_loops(H, A, np.empty((10, 7))), rtol=1e-12,
                               atol=1e-12 * (np.abs(H) @ np.abs(A).T).max())


def test_tanh_vec_accuracy():
    """tanh_vec is within 4 ulp of numpy.tanh in float64 over ±25 and tiny arguments, odd, and ±1 beyond."""
    import numba

    @numba.njit
    def apply(x, out):
        for i in range(x.shape[0]):
            out[i] = tiled.tanh_vec(x[i])
        return out

    x = np.concatenate([np.linspace(-25, 25, 20001), np.logspace(-300, 1.5, 2000), -np.logspace(-300, 1.5, 2000)])
    got, want = apply(x, np.empty_like(x)), np.tanh(x)
    assert np.all(np.abs(got - want) <= 4 * np.spacing(np.abs(want)))
    assert np.array_equal(apply(-x, np.empty_like(x)), -got)
