"""The ``_fast`` forms (the trainer's) against the exact loops forms, and the fused and
support equations against the composition of the exact forms they fuse.

Tolerance: a fast form is the same sum reassociated (fastmath, register blocks), so
|fast − loops| ≤ rtol · Σ|terms| elementwise, with rtol 1e-12 (float64) and 2e-5
(float32), Σ|terms| being the same formula evaluated on |inputs| (cancellation cannot
fake a failure). Elementwise forms (σ, σ', H, fused outputs) compare within a few ulp
of the larger value (tanh is a polynomial form, 3 ulp). Shapes are random and include
realistic sizes (S up to 1024, N up to 512) with a small example count; the summed
dimension stays short so that the exact forms they are checked against stay quick.
"""
import os

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from indexnet.kernels import activations as act
from indexnet.kernels import dense, losses
from indexnet.nn.network import Network
from indexnet.nn.optim import SGD
from indexnet.train.step import make_train_step

RTOL = {np.float64: 1e-12, np.float32: 2e-5}
DTYPES = [np.float64, np.float32]
#: (S, S_prev, N): the output rows and samples up to realistic sizes (N on both sides of
#: dense.SHORT_BATCH, the weight gradient's two blockings; S_prev on both sides of
#: dense.SHORT_SUM, the forward's two blockings), the summed index short
shapes = st.tuples(st.integers(1, 1024),
                   st.one_of(st.integers(1, 40), st.integers(dense.SHORT_SUM, dense.SHORT_SUM + 24)),
                   st.integers(1, 512))
few = settings(max_examples=6)


def _rand(rng, shape, dtype, zeros=0.0):
    x = rng.standard_normal(shape).astype(dtype)
    if zeros:
        x[rng.random(shape) < zeros] = 0
    return x


def _close(got, want, scale, dtype):
    assert got.shape == want.shape
    bound = RTOL[dtype] * scale + np.finfo(dtype).tiny
    assert np.all(np.abs(got - want) <= bound), float(np.max(np.abs(got - want) - bound))


def _ulps(got, want, dtype, n, ref=None):
    """|got − want| within n ulp of ``ref`` (the size of the formula's terms; default the values)."""
    ref = np.maximum(np.abs(want), np.abs(got)) if ref is None else np.abs(ref)
    assert np.all(np.abs(got - want) <= n * np.spacing(ref.astype(dtype)) + np.finfo(dtype).tiny)


def _support(A):
    S_prev, N = A.shape
    buf = (np.zeros(N + 1, np.int64), np.zeros(A.size, np.int64), np.zeros(A.size, A.dtype),
           np.zeros(S_prev + 1, np.int64), np.zeros(A.size, np.int64), np.zeros(A.size, A.dtype))
    nnz = dense.support_of(A, *buf, np.zeros((dense.SUPPORT_FILL_BLOCKS, N), np.int64))
    assert nnz == np.count_nonzero(A)
    return buf


@pytest.mark.parametrize("shape", [(784, 100), (5, 1), (1, 7), (30, 9)])
def test_support_lists(shape, rng):
    """support_of lists exactly the nonzeros of A: by sample n the rows j in increasing order
    with their values, by row j the samples n in increasing order (an all-nonzero A and an
    all-zero A included)."""
    for fill in ("sparse", "full", "empty"):
        A = rng.standard_normal(shape)
        A[rng.random(shape) < 0.8] = 0
        if fill != "sparse":
            A[...] = 1.0 if fill == "full" else 0.0
        col_ptr, col_j, col_val, row_ptr, row_n, row_val = _support(A)
        for n in range(shape[1]):
            js = np.flatnonzero(A[:, n])
            assert np.array_equal(col_j[col_ptr[n]:col_ptr[n + 1]], js)
            assert np.array_equal(col_val[col_ptr[n]:col_ptr[n + 1]], A[js, n])
        for j in range(shape[0]):
            ns = np.flatnonzero(A[j])
            assert np.array_equal(row_n[row_ptr[j]:row_ptr[j + 1]], ns)
            assert np.array_equal(row_val[row_ptr[j]:row_ptr[j + 1]], A[j, ns])


def _support_operands(M, dtype):
    """Mᵗ as the support forms read it (packed by ``dense._pack_transpose``)."""
    R, C = M.shape
    MT = np.full((C, R), np.nan, dtype)
    dense._pack_transpose(M, MT)
    assert np.array_equal(MT, M.T), "_pack_transpose is not the transpose"
    return MT


@pytest.mark.parametrize("dtype", DTYPES)
@few
@given(shape=shapes, seed=st.integers(0, 2**31))
def test_dense_sums_fast_equal_loops(dtype, shape, seed):
    """D1.4, D2.5, D2.25, D2.10: forward, weight, input and bias gradient fast forms equal
    the exact loops forms within rtol · Σ|terms|."""
    S, S_prev, N = shape
    rng = np.random.default_rng(seed)
    W, A, b, H = _rand(rng, (S, S_prev), dtype), _rand(rng, (S_prev, N), dtype), _rand(rng, S, dtype), \
        _rand(rng, (S, N), dtype)
    aW, aA, ab, aH = np.abs(W), np.abs(A), np.abs(b), np.abs(H)
    Z = dense.forward_fast(W, A, b, np.empty((S, N), dtype), np.empty((N, S_prev), dtype))
    _close(Z, dense.forward_loops(W, A, b, np.empty((S, N), dtype)), aW @ aA + ab[:, None], dtype)
    dW = dense.weight_grad_fast(H, A, np.empty((S, S_prev), dtype), np.empty((N, S_prev), dtype))
    _close(dW, dense.weight_grad_loops(H, A, np.empty((S, S_prev), dtype)), aH @ aA.T, dtype)
    D = dense.input_grad_fast(W, H, np.empty((S_prev, N), dtype))
    _close(D, dense.input_grad_loops(W, H, np.empty((S_prev, N), dtype)), aW.T @ aH, dtype)
    db = dense.bias_grad_fast(H, np.empty(S, dtype))
    _close(db, dense.bias_grad_loops(H, np.empty(S, dtype)), aH.sum(axis=1), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@few
@given(shape=shapes, seed=st.integers(0, 2**31), kind=st.sampled_from(sorted(act.CODES.values())))
@example(shape=(16, 16, 32), seed=3, kind=act.TANH)  # the tiny net's hidden layer
@example(shape=(16, 1, 32), seed=3, kind=act.TANH)  # a sum over one j: one sweep per row
@example(shape=(7, 3, 5), seed=4, kind=act.RELU)
def test_fused_forward_is_forward_then_activation(dtype, shape, seed, kind):
    """D1.5 equals D1.4 (loops) followed by A0 (loops), and D1.6, summed over the support of a
    mostly-zero A, equals the same: Z within rtol · Σ|terms|, A within that bound times the
    largest slope of σ (1) plus 4 ulp."""
    S, S_prev, N = shape
    rng = np.random.default_rng(seed)
    W, A, b = _rand(rng, (S, S_prev), dtype), _rand(rng, (S_prev, N), dtype, zeros=0.8), _rand(rng, S, dtype)
    scale = np.abs(W) @ np.abs(A) + np.abs(b)[:, None]
    Zw = dense.forward_loops(W, A, b, np.empty((S, N), dtype))
    Aw = act.activation_loops(Zw, kind, 0.1, np.empty((S, N), dtype))
    Z, Ao = np.empty((S, N), dtype), np.empty((S, N), dtype)
    dense.forward_activation_fast(W, A, b, kind, 0.1, Z, Ao, np.empty((N, S_prev), dtype))
    _close(Z, Zw, scale, dtype)
    _close(Ao, Aw, scale + 4 * np.spacing(np.abs(Aw)) / RTOL[dtype], dtype)
    col_ptr, col_j, col_val = _support(A)[:3]
    Z2, A2 = np.empty((S, N), dtype), np.empty((S, N), dtype)
    WT = _support_operands(W, dtype)
    dense.forward_support_fast(WT, b, col_ptr, col_j, col_val, kind, 0.1, Z2, A2, np.full((N, S), np.nan, dtype))
    _close(Z2, Zw, scale, dtype)
    _close(A2, Aw, scale + 4 * np.spacing(np.abs(Aw)) / RTOL[dtype], dtype)


T = dense.SHORT_SUM


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("S_prev,N", [(1, 37), (3, 37), (5, 37), (T - 1, 37), (T, 37), (T + 3, 37), (T, T + 5),
                                      (2 * T, 2 * T + 1), (2 * T, 2 * T - 1), (2 * T + 1, 2 * T + 9)])
def test_forward_blockings_on_both_sides_of_short_sum(dtype, S_prev, N, rng):
    """D1.4 and D1.5: the forward fast forms' two blockings (axpy sweeps without packing for
    a short sum, dense._axpy_forward: S_prev < SHORT_SUM, or S_prev <= 2 SHORT_SUM with
    N >= S_prev; packed dot products otherwise) each equal the exact loops forms, on both
    sides of both bounds, at row counts that are not multiples of the 4-row block (S = 13)
    and odd batches."""
    S = 13
    W, A, b = _rand(rng, (S, S_prev), dtype), _rand(rng, (S_prev, N), dtype), _rand(rng, S, dtype)
    scale = np.abs(W) @ np.abs(A) + np.abs(b)[:, None]
    Zw = dense.forward_loops(W, A, b, np.empty((S, N), dtype))
    AT = np.full((N, S_prev), np.nan, dtype)  # packed before it is read, or not read at all
    _close(dense.forward_fast(W, A, b, np.empty((S, N), dtype), AT), Zw, scale, dtype)
    Z, Ao = np.empty((S, N), dtype), np.empty((S, N), dtype)
    dense.forward_activation_fast(W, A, b, act.CODES["tanh"], 0.0, Z, Ao, AT)
    _close(Z, Zw, scale, dtype)
    Aw = act.activation_loops(Zw, act.CODES["tanh"], 0.0, np.empty((S, N), dtype))
    _close(Ao, Aw, scale + 4 * np.spacing(np.abs(Aw)) / RTOL[dtype], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("S", [1, 2, 3, 4, 5])
def test_input_grad_short_sums(dtype, S, rng):
    """D2.25 summed over fewer than 4 rows i (the axpy helper's one-row-one-k variant) and
    over 4 or 5 (its register block, padded), against the exact loops form."""
    S_prev, N = 14, 33
    W, H = _rand(rng, (S, S_prev), dtype), _rand(rng, (S, N), dtype)
    D = dense.input_grad_fast(W, H, np.full((S_prev, N), np.nan, dtype))
    _close(D, dense.input_grad_loops(W, H, np.empty((S_prev, N), dtype)), np.abs(W).T @ np.abs(H), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("S,S_prev,N", [(16, 1, 32), (1, 16, 32), (16, 16, 32), (32, 32, 300), (33, 32, 37),
                                        (5, 300, 7)])
def test_weight_grad_blockings_on_both_sides_of_small_weights(dtype, S, S_prev, N, rng):
    """D2.5 and D2.6: the weight-gradient fast forms' small-size variant (one dot product over
    n per entry, S·S_prev <= dense.SMALL_WEIGHTS) and their blocked forms just above it (both
    batch blockings) equal the exact loops form within rtol · (|W| + η Σ|terms|)."""
    assert (S * S_prev <= dense.SMALL_WEIGHTS) == ((S, S_prev) in [(16, 1), (1, 16), (16, 16), (32, 32)])
    W, A, H = _rand(rng, (S, S_prev), dtype), _rand(rng, (S_prev, N), dtype), _rand(rng, (S, N), dtype)
    g = dense.weight_grad_loops(H, A, np.empty((S, S_prev), dtype))
    terms = np.abs(H) @ np.abs(A).T
    AT = np.full((N, S_prev), np.nan, dtype)  # packed before it is read, or not read at all
    _close(dense.weight_grad_fast(H, A, np.full((S, S_prev), np.nan, dtype), AT), g, terms, dtype)
    eta = 0.3
    _close(dense.weight_grad_sgd_fast(H, A, eta, W.copy(), AT), W - dtype(eta) * g, np.abs(W) + eta * terms, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("S,S_prev,N", [(40, 200, 50), (10, 800, 100), (33, 130, 7)])
def test_weight_grad_reads_the_forwards_packing(dtype, S, S_prev, N, rng):
    """packed=True: D2.5 and D2.6 read A_prevᵗ from the AT that D1.5's fast form packed in
    the same step (dense.forward_packs) and equal their results with their own packing, bit
    for bit (the same values summed in the same order). Shapes where the forward packs (long
    sums over j), the batch is short (the weight gradient's axpy blocking reads AT) and W is
    above the small-size variant. A doubled AT doubles the result: the given AT is read, not
    packed again."""
    assert dense.forward_packs(S_prev, N) and N < dense.SHORT_BATCH and S * S_prev > dense.SMALL_WEIGHTS
    W, A, H = _rand(rng, (S, S_prev), dtype), _rand(rng, (S_prev, N), dtype), _rand(rng, (S, N), dtype)
    b = _rand(rng, (S,), dtype)
    AT = np.full((N, S_prev), np.nan, dtype)
    dense.forward_activation_fast(W, A, b, act.TANH, 0.0, np.empty((S, N), dtype), np.empty((S, N), dtype), AT)
    assert np.array_equal(AT, A.T)
    own = dense.weight_grad_fast(H, A, np.empty((S, S_prev), dtype), np.empty((N, S_prev), dtype))
    assert np.array_equal(dense.weight_grad_fast(H, A, np.empty((S, S_prev), dtype), AT, True), own)
    eta = 0.3
    own = dense.weight_grad_sgd_fast(H, A, eta, W.copy(), np.empty((N, S_prev), dtype))
    assert np.array_equal(dense.weight_grad_sgd_fast(H, A, eta, W.copy(), AT, True), own)
    # and AT is read as given, not packed again: a doubled AT doubles the sums (exact in binary)
    twice = dense.weight_grad_fast(H, A, np.empty((S, S_prev), dtype), 2 * AT, True)
    assert np.array_equal(twice, 2 * dense.weight_grad_fast(H, A, np.empty((S, S_prev), dtype), AT, True))


@pytest.mark.parametrize("dtype", DTYPES)
@few
@given(shape=shapes, seed=st.integers(0, 2**31), eta=st.floats(1e-3, 1.0))
def test_folded_sgd_and_support_weight_grads(dtype, shape, seed, eta):
    """D2.6 equals W − η·D2.5 (loops); D2.7 and D2.8, summed over the support of a mostly-zero
    A, equal D2.5 and W − η·D2.5; all within rtol · (|W| + η Σ|terms|)."""
    S, S_prev, N = shape
    rng = np.random.default_rng(seed)
    W, A, H = _rand(rng, (S, S_prev), dtype), _rand(rng, (S_prev, N), dtype, zeros=0.8), _rand(rng, (S, N), dtype)
    g = dense.weight_grad_loops(H, A, np.empty((S, S_prev), dtype))
    terms = np.abs(H) @ np.abs(A).T
    want = W - dtype(eta) * g
    scale = np.abs(W) + eta * terms
    _close(dense.weight_grad_sgd_fast(H, A, eta, W.copy(), np.empty((N, S_prev), dtype)), want, scale, dtype)
    _, _, _, row_ptr, row_n, row_val = _support(A)
    HT = _support_operands(H, dtype)
    dWT = np.full((S_prev, S), np.nan, dtype)
    dense.weight_grad_support_fast(HT, row_ptr, row_n, row_val, dWT)
    _close(dWT.T, g, terms, dtype)
    WT = _support_operands(W, dtype)
    dense.weight_grad_support_sgd_fast(HT, row_ptr, row_n, row_val, eta, WT)
    _close(WT.T, want, scale, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("blocks", [(0, 1), (1, -1), (1, 0), (1, 1), (2, 3)])
def test_support_forms_at_register_block_edges(dtype, blocks, rng):
    """D1.6, D2.7 and D2.8 at row counts S on both sides of their register blocks' widths
    (dense.SUPPORT_FORWARD_BYTES, SUPPORT_GRAD_BYTES: whole blocks held in registers, a
    shorter last block summed on the stack row) equal D1.5 and D2.5 (loops) within
    rtol · Σ|terms|; a row j of A with no nonzero leaves its row of W unchanged."""
    S_prev, N = 37, 9
    for nbytes in (dense.SUPPORT_FORWARD_BYTES, dense.SUPPORT_GRAD_BYTES):
        width = nbytes // np.dtype(dtype).itemsize
        S = blocks[0] * width + blocks[1] if blocks[0] else blocks[1]
        W, A, b, H = _rand(rng, (S, S_prev), dtype), _rand(rng, (S_prev, N), dtype, zeros=0.8), \
            _rand(rng, S, dtype), _rand(rng, (S, N), dtype)
        A[5] = 0
        col_ptr, col_j, col_val, row_ptr, row_n, row_val = _support(A)
        Zw = dense.forward_loops(W, A, b, np.empty((S, N), dtype))
        Z, Ao = np.full((S, N), np.nan, dtype), np.full((S, N), np.nan, dtype)
        dense.forward_support_fast(_support_operands(W, dtype), b, col_ptr, col_j, col_val, act.CODES["relu"], 0.0,
                                   Z, Ao, np.full((N, S), np.nan, dtype))
        _close(Z, Zw, np.abs(W) @ np.abs(A) + np.abs(b)[:, None], dtype)
        assert np.array_equal(Ao, np.maximum(Z, 0))
        g = dense.weight_grad_loops(H, A, np.empty((S, S_prev), dtype))
        terms = np.abs(H) @ np.abs(A).T
        HT = _support_operands(H, dtype)
        dWT = np.full((S_prev, S), np.nan, dtype)
        dense.weight_grad_support_fast(HT, row_ptr, row_n, row_val, dWT)
        _close(dWT.T, g, terms, dtype)
        WT = _support_operands(W, dtype)
        dense.weight_grad_support_sgd_fast(HT, row_ptr, row_n, row_val, 0.25, WT)
        _close(WT.T, W - dtype(0.25) * g, np.abs(W) + 0.25 * terms, dtype)
        assert np.array_equal(WT[5], W[:, 5])


def _rows(rng, shape, dtype, gaps, scale=1.0):
    """A normal array of ``shape`` and standard deviation ``scale``; with ``gaps`` a view whose
    rows do not lie back to back (every row followed by 7 unused elements)."""
    if not gaps:
        return (rng.standard_normal(shape) * scale).astype(dtype)
    return (rng.standard_normal((shape[0], shape[1] + 7)) * scale).astype(dtype)[:, :shape[1]]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(act.CODES))
@pytest.mark.parametrize("rows", ["long", "short", "short with gaps"])
def test_elementwise_fast_forms(dtype, name, rows, rng):
    """A0, A6, D2.13, D2.14 and D2.15 fast forms equal their loops forms (D2.14: loops σ', H, Σ_n H;
    D2.15: b − η Σ_n H)
    within 4 ulp (elementwise) and rtol · Σ|H| (the bias sum); σ' is read from the argument
    SIGMA_PRIME_FROM declares (ulps of the size of the formula's terms). On rows of 129 and
    of 59 samples, and on views whose rows have gaps between them."""
    kind = act.CODES[name]
    shape = (37, 129) if rows == "long" else (37, 59)
    Z = _rows(rng, shape, dtype, rows.endswith("gaps"), 4.0)
    Delta = _rows(rng, shape, dtype, rows.endswith("gaps"))
    Aw = act.activation_loops(Z, kind, 0.1, np.empty_like(Z))
    _ulps(act.activation_fast(Z, kind, 0.1, np.empty_like(Z)), Aw, dtype, 4)
    dw = act.activation_grad_loops(Z, Aw, kind, 0.1, np.empty_like(Z))
    one = np.ones_like(Z)  # σ' <= 1, and 1 − A², A(1 − A) have terms of size 1
    _ulps(act.activation_grad_fast(Z, Aw, kind, 0.1, np.empty_like(Z)), dw, dtype, 4, one)
    Hw = dense.hadamard_loops(Delta, dw, np.empty_like(Z))
    _ulps(dense.hadamard_fast(Delta, dw, np.empty_like(Z)), Hw, dtype, 4)
    H, db = _rows(rng, shape, dtype, rows.endswith("gaps")), np.empty(Z.shape[0], dtype)
    dense.hadamard_bias_grad_fast(Delta, Z, Aw, kind, 0.1, H, db)
    _ulps(H, Hw, dtype, 8, Delta)
    dbw = dense.bias_grad_loops(Hw, np.empty_like(db))
    _close(db, dbw, np.abs(Hw).sum(axis=1) * 8, dtype)
    # D2.15: D2.14 with the SGD step folded in, b − η·D2.10 (loops)
    b, eta = rng.standard_normal(Z.shape[0]).astype(dtype), 0.3
    H2, b2 = _rows(rng, shape, dtype, rows.endswith("gaps")), b.copy()
    dense.hadamard_bias_sgd_fast(Delta, Z, Aw, kind, 0.1, eta, H2, b2)
    _ulps(H2, Hw, dtype, 8, Delta)
    _close(b2, b - dtype(eta) * dbw, np.abs(b) + eta * np.abs(Hw).sum(axis=1) * 8, dtype)


@pytest.mark.parametrize("name", sorted(act.CODES))
def test_sigma_prime_reads_the_declared_argument(name):
    """σ'(z, a) depends only on the argument its table declares (SIGMA_PRIME_FROM for the
    reference forms, SIGMA_PRIME_FROM_FAST for the fast form): changing the other leaves it
    unchanged."""
    kind = act.CODES[name]
    z = np.array([[-2.5, -0.3, 0.0, 0.4, 3.0]])
    a = act.activation_loops(z, kind, 0.1, np.empty_like(z))
    for fn in (act.activation_grad_loops, act.activation_grad_fast, act.activation_grad_literal,
               act.activation_grad_numpy):
        table = act.SIGMA_PRIME_FROM_FAST if fn is act.activation_grad_fast else act.SIGMA_PRIME_FROM
        other = (z, a + 7.0) if table[name] == "Z" else (z + 7.0, a)
        want = fn(z, a, kind, 0.1, np.empty_like(z))
        np.testing.assert_array_equal(fn(*other, kind, 0.1, np.empty_like(z)), want, err_msg=fn.__name__)


def test_tanh_fast_within_3_ulp():
    """The fast forms' tanh (A5 by a polynomial expm1) stays within 3 ulp of numpy.tanh, sign
    of zero included, and saturates to ±1."""
    x = np.concatenate([np.linspace(-25, 25, 200001), np.geomspace(1e-300, 3, 20000),
                        -np.geomspace(1e-300, 3, 20000), [0.0, -0.0, 40.0, -1e300, np.inf, -np.inf]])[None, :]
    got = act.activation_fast(x, act.TANH, 0.0, np.empty_like(x))
    want = np.tanh(x)
    assert np.max(np.abs(got - want) / np.spacing(np.abs(want))) <= 3
    assert np.array_equal(np.signbit(got), np.signbit(want))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("head", ["L10", "L11", "L12"])
@pytest.mark.parametrize("N", [67, losses.SAMPLE_BLOCK + 3])
def test_fused_output_passes_are_their_compositions(dtype, head, N, rng):
    """L10 (S1, L5, L7), L11 (A4b, L8, L7b), L12 (A0, L1, L4, D2.13): A, J and H of the fused
    pass equal the unfused loops kernels composed, within 8 ulp (A, H) and rtol Σ|terms| (J),
    for one block of samples and for more than one (L12's blocks of SAMPLE_BLOCK)."""
    K = 10
    Z = (rng.standard_normal((K, N)) * 3).astype(dtype)
    A, H, ps = np.empty_like(Z), np.empty_like(Z), np.empty(N, dtype)
    if head == "L10":
        Y = np.ascontiguousarray(np.eye(K, dtype=dtype)[:, rng.integers(0, K, N)])
        J = losses.softmax_cross_entropy_fast(Z, Y, A, H, ps)
        Aw = act.softmax_loops(Z, np.empty_like(Z))
        Jw = losses.cross_entropy_value_loops(Z, Y)
        Hw = losses.cross_entropy_output_grad_loops(Aw, Y, np.empty_like(Z))
    elif head == "L11":
        Y = rng.random((K, N)).astype(dtype)
        J = losses.sigmoid_binary_cross_entropy_fast(Z, Y, A, H, ps)
        Aw = act.activation_loops(Z, act.SIGMOID, 0.0, np.empty_like(Z))
        Jw = losses.binary_cross_entropy_value_loops(Z, Y)
        Hw = losses.binary_cross_entropy_output_grad_loops(Aw, Y, np.empty_like(Z))
    else:
        Y = rng.standard_normal((K, N)).astype(dtype)
        scale = 1.0 / N
        J = losses.squared_error_output_fast(Z, Y, act.SOFTPLUS, 0.0, scale, A, H, ps)
        Aw = act.activation_loops(Z, act.SOFTPLUS, 0.0, np.empty_like(Z))
        Jw = losses.squared_error_value_loops(Aw, Y, scale)
        D = losses.squared_error_delta_loops(Aw, Y, scale, np.empty_like(Z))
        dsig = act.activation_grad_loops(Z, Aw, act.SOFTPLUS, 0.0, np.empty_like(Z))
        Hw = dense.hadamard_loops(D, dsig, np.empty_like(Z))
    # L10's S = e^{Z − ℓ} carries the rounding of ℓ, |Z − ℓ| ulp relative: a scale of (1 + max|Z|)
    grow = 1 + np.abs(Z).max() if head == "L10" else 1
    _ulps(A, Aw, dtype, 8, np.abs(Aw) * grow)
    _ulps(H, Hw, dtype, 8, 2 * (np.abs(Aw) * grow + np.abs(Y)))
    assert abs(J - Jw) <= 64 * np.finfo(dtype).eps * (abs(Jw) + np.abs(Z).sum() / N)


@pytest.mark.parametrize("engine", ["literal", "loops", "numpy", "fast"])
def test_softplus_gradients_by_finite_differences(engine, rng):
    """A softplus hidden layer (σ' = logistic(Z), read from Z) gives gradients equal to central
    finite differences of the loss on every engine (float64, rtol 1e-6)."""
    net = Network.from_sizes([3, 5, 2], ["softplus", "softplus"], "mse", seed=7)
    X = rng.standard_normal((3, 4))
    Y = rng.standard_normal((2, 4))
    bp = net.backward(X, Y, engine)
    theta = net.flat_params()
    got = np.concatenate([bp.grads[l][k].ravel() for l in range(2) for k in ("W", "b")])
    num = np.empty_like(theta)
    h = 1e-6
    for k in range(theta.size):
        t = theta.copy()
        t[k] += h
        net.set_flat_params(t)
        J_plus = net.loss(X, Y, "loops")
        t[k] -= 2 * h
        net.set_flat_params(t)
        num[k] = (J_plus - net.loss(X, Y, "loops")) / (2 * h)
    net.set_flat_params(theta)
    np.testing.assert_allclose(got, num, rtol=1e-6, atol=1e-9)


def test_four_engines_train_alike(rng):
    """literal, loops, numpy and fast train the same network (tanh and softplus hidden layers,
    softmax + cross-entropy, SGD) for 15 steps to the same loss: within 1e-10 relative in
    float64 (the engines differ only in rounding)."""
    base = Network.from_sizes([4, 7, 6, 3], ["tanh", "softplus", "softmax"], "cross_entropy", seed=8)
    X = rng.standard_normal((4, 12))
    Y = np.ascontiguousarray(np.eye(3)[:, rng.integers(0, 3, 12)])
    final = {}
    for engine in ("literal", "loops", "numpy", "fast"):
        net = base.copy()
        step = make_train_step(net, SGD(lr=0.2), engine)
        for _ in range(15):
            J = step(X, Y)
        final[engine] = (J, net.flat_params())
    J0, theta0 = final["loops"]
    for engine, (J, theta) in final.items():
        assert abs(J - J0) <= 1e-10 * abs(J0), engine
        np.testing.assert_allclose(theta, theta0, rtol=1e-9, atol=1e-12, err_msg=engine)
    assert final["loops"][0] < base.loss(X, Y)


@pytest.mark.parametrize("dtype", DTYPES)
def test_decay_is_o8_without_gradient(dtype, rng):
    """O16 (θ ← (1 − ηλ)θ) equals O8's exact form with a zero gradient, θ − η(0 + λθ), within
    2 ulp of θ: the decay part of a step that the trainer folds into the weight gradient."""
    from indexnet.kernels import optim

    theta = rng.standard_normal(1000).astype(dtype)
    lr, lam = 0.05, 1e-3
    want = optim.sgd_step_loops(theta, np.zeros_like(theta), lr, lam, np.empty_like(theta))
    got = optim.decay_fast(theta.copy(), lr, lam)
    _ulps(got, want, dtype, 2, ref=theta)


_FAST_FIRST = """
import numpy as np
from indexnet.kernels import activations as act, losses

rng = np.random.default_rng(1)
Z = rng.standard_normal((12, 40)) + 3.5
Y = np.eye(12)[:, rng.integers(0, 12, 40)]
A, H, per = np.empty_like(Z), np.empty_like(Z), np.empty(40)
losses.softmax_cross_entropy_fast(Z, Y, A, H, per)  # a fast form calling the exact shifted_exp_sum, first
assert np.array_equal(act.softmax_loops(Z, np.empty_like(Z)), act.softmax_literal(Z, np.empty_like(Z)))
"""


def test_a_fast_form_compiled_first_leaves_the_exact_helpers_exact(tmp_path):
    """Numba builds a called function with its caller's fastmath unless the callee states its
    own (_jit.EXACT_FLAGS). With a fast form compiled first, in a fresh process and an empty
    cache (as a training run leaves them), the exact helper it shares with a loops form stays
    exact: softmax_loops equals softmax_literal bit for bit in that process and in the next
    one, which reads the cache."""
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", _FAST_FIRST], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("kind", sorted(act.CODES))
def test_serial_twins_inline_the_row_helpers_the_parallel_forms_call(kind, rng):
    """The row helpers (σ and σ'·Δ along a row) are one compiled function each that the
    parallel fast forms call, and the serial twins inline them instead, also through an
    inlined helper between (D2.14's ``_hadamard_bias_row``); both builds give the same rows."""
    from indexnet._jit import serial_twin

    assert dense.forward_activation_fast.py_func.__globals__["activate_row"] is act.activate_row
    fwd = serial_twin(dense.forward_activation_fast)
    assert fwd.py_func.__globals__["activate_row"] is act.activate_row.inline_twin
    hb = serial_twin(dense.hadamard_bias_sgd_fast)
    row = hb.py_func.__globals__["_hadamard_bias_row"]
    assert row is not dense._hadamard_bias_row and row.py_func.__globals__["hadamard_row"] is act.hadamard_row.inline_twin
    assert dense._hadamard_bias_row.py_func.__globals__["hadamard_row"] is act.hadamard_row  # the original untouched

    code, alpha = act.CODES[kind], 0.1
    W, A_prev, b = rng.standard_normal((37, 9)), rng.standard_normal((9, 45)), rng.standard_normal(37)
    out = {}
    for name, f in (("parallel", dense.forward_activation_fast), ("twin", fwd)):
        Z, A, AT = np.empty((37, 45)), np.empty((37, 45)), np.empty((45, 9))
        f(W, A_prev, b, code, alpha, Z, A, AT)
        H, bb = np.empty((37, 45)), b.copy()  # Δ = 1: H is σ'(Z), b steps by 0.5 Σ_n σ'
        (dense.hadamard_bias_sgd_fast if name == "parallel" else hb)(np.ones((37, 45)), Z, A, code, alpha, 0.5, H, bb)
        out[name] = (Z, A, H, bb)
    for p, t in zip(out["parallel"], out["twin"]):
        np.testing.assert_allclose(t, p, rtol=1e-13, atol=1e-15)
