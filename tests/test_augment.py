"""Distortions: the warp and the smoothing in their three forms, against scipy.ndimage, and the augmenter.

Formulas of derivations/augment.md: warp (T1), affine source points (T2), Gaussian
weights (T3), smooth_columns (T4), smooth_rows (T5), elastic source points (T6), the
counter-based draws (T7) and the fused distortion the trainer runs (T8).
Layout samples last: images (C, H, W, N), source points (H, W, N).
"""
import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given
from hypothesis import strategies as st

from indexnet.data.augment import (Affine, Augmenter, Elastic, affine_points, band_matrix, batch_key, draws,
                                   gaussian_weights, mirror_matrix, parse_augment)
from indexnet.kernels import augment as K

FORMS = ("literal", "loops", "numpy")


def grid(H, W, N):
    """The identity source points y = p, x = q."""
    Y = np.broadcast_to(np.arange(H, dtype=np.float64)[:, None, None], (H, W, N)).copy()
    X = np.broadcast_to(np.arange(W, dtype=np.float64)[None, :, None], (H, W, N)).copy()
    return Y, X


def warp(form, A, Y, X):
    return getattr(K, f"warp_{form}")(A, Y, X, np.empty_like(A))


def smooth(form, D, g):
    """Eq. T4 then T5 in one form."""
    E = getattr(K, f"smooth_columns_{form}")(D, g, np.empty_like(D))
    return getattr(K, f"smooth_rows_{form}")(E, g, np.empty_like(D))


@st.composite
def warp_cases(draw):
    """C 1..2, H, W 1..7, N 1..3, source points anywhere from 2 pixels off the grid to 2 past it,
    a third of them on integer positions (the weights' kinks and the grid's edges)."""
    C, N = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    H, W = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    A = rng.standard_normal((C, H, W, N))
    Y = rng.uniform(-2.0, H + 1.0, (H, W, N))
    X = rng.uniform(-2.0, W + 1.0, (H, W, N))
    on_grid = rng.random((H, W, N)) < 1 / 3
    Y[on_grid], X[on_grid] = np.round(Y[on_grid]), np.round(X[on_grid])
    return A, Y, X


@given(warp_cases())
def test_warp_literal_equals_loops_and_numpy(case):
    """T1: the loops form (four neighbours) equals the literal sum over the whole grid bit for bit,
    also at the border and on integer source points; numpy agrees to 1e-12."""
    A, Y, X = case
    lit = warp("literal", A, Y, X)
    np.testing.assert_array_equal(warp("loops", A, Y, X), lit)
    np.testing.assert_allclose(warp("numpy", A, Y, X), lit, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_identity_returns_the_input_bit_for_bit(form, dtype, rng):
    """T1 with y = p, x = q: every weight is δ(p, u) δ(q, v), so A′ = A exactly, in each form and dtype."""
    A = rng.standard_normal((2, 5, 6, 3)).astype(dtype)
    np.testing.assert_array_equal(warp(form, A, *grid(5, 6, 3)), A)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("ty,tx", [(2, -3), (-1, 0), (0, 4), (7, 0)])
def test_integer_shift_is_a_zero_filled_shift(form, ty, tx, rng):
    """T1 + T2 with θ = φ = 0, s = 1 and an integer τ: the image moves by τ, zeros come in
    (a shift past the whole image leaves zeros)."""
    C, H, W, N = 1, 6, 5, 2
    A = rng.standard_normal((C, H, W, N))
    M = np.tile(np.eye(2), (N, 1, 1))
    tau = np.tile([float(ty), float(tx)], (N, 1))
    want = np.zeros_like(A)
    for p in range(H):
        for q in range(W):
            if 0 <= p - ty < H and 0 <= q - tx < W:
                want[:, p, q] = A[:, p - ty, q - tx]
    np.testing.assert_array_equal(warp(form, A, *affine_points(M, tau, H, W)), want)


def test_affine_warp_matches_scipy_affine_transform(rng):
    """T1 + T2 against scipy.ndimage.affine_transform (order 1, zero outside: mode grid-constant)
    for random rotations, shears, scales and shifts, per sample and channel."""
    C, H, W, N = 2, 9, 8, 5
    A = rng.standard_normal((C, H, W, N))
    M, tau = Affine(rotate=40, shear=20, scale=0.3, shift=3).matrices(batch_key(rng), N)
    got = warp("loops", A, *affine_points(M, tau, H, W))
    centre = np.array([(H - 1) / 2, (W - 1) / 2])
    for n in range(N):
        offset = centre - M[n] @ (centre + tau[n])
        for c in range(C):
            want = ndi.affine_transform(A[c, :, :, n], M[n], offset=offset, order=1, mode="grid-constant", cval=0.0)
            np.testing.assert_allclose(got[c, :, :, n], want, rtol=1e-12, atol=1e-12)


def test_affine_matrix_is_the_inverse_of_the_forward_map(rng):
    """T2: M = F⁻¹ with F = R(θ) S(φ) diag(s_y, s_x), built here from the parameters (the T7 draws
    j = 0, 1, 2, halves as in derivations/augment.md §4) independently."""
    aff = Affine(rotate=30, shear=15, scale=0.2, shift=0)
    M, _ = aff.matrices(np.uint64(5), 4)
    U = K.draws_numpy(np.uint64(5), 0, np.empty((2, 3, 4)))
    theta, phi = np.deg2rad(30 * U[0, 0]), np.deg2rad(15 * U[1, 0])
    s = 1 + 0.2 * U[:, 1].T
    for n in range(4):
        R = np.array([[np.cos(theta[n]), -np.sin(theta[n])], [np.sin(theta[n]), np.cos(theta[n])]])
        S = np.array([[1.0, 0.0], [np.tan(phi[n]), 1.0]])
        F = R @ S @ np.diag(s[n])
        np.testing.assert_allclose(M[n] @ F, np.eye(2), atol=1e-13)


def test_elastic_warp_matches_scipy_map_coordinates(rng):
    """T1 at arbitrary (elastic) source points against scipy.ndimage.map_coordinates, order 1."""
    C, H, W, N = 1, 10, 7, 3
    A = rng.standard_normal((C, H, W, N))
    D = Elastic(alpha=8, sigma=1.5).displacement(batch_key(rng), H, W, N)
    Y, X = grid(H, W, N)
    Y, X = Y + D[0], X + D[1]
    got = warp("loops", A, Y, X)
    for n in range(N):
        want = ndi.map_coordinates(A[0, :, :, n], [Y[:, :, n], X[:, :, n]], order=1, mode="grid-constant", cval=0.0)
        np.testing.assert_allclose(got[0, :, :, n], want, rtol=1e-12, atol=1e-12)


@st.composite
def fields(draw):
    """A 2-component field of H, W 1..9, N 1..3 and σ from 0.3 (radius 1) to 3 (radius 12, wider than the grid)."""
    H, W, N = draw(st.integers(1, 9)), draw(st.integers(1, 9)), draw(st.integers(1, 3))
    sigma = draw(st.floats(0.3, 3.0))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.uniform(-1, 1, (2, H, W, N)), gaussian_weights(sigma), sigma


@given(fields())
def test_smoothing_forms_agree(case):
    """T4 and T5: loops == literal bit for bit (band of g vs the whole axis with g zero-extended),
    numpy to 1e-12."""
    D, g, _ = case
    for name in ("smooth_columns", "smooth_rows"):
        lit = getattr(K, f"{name}_literal")(D, g, np.empty_like(D))
        np.testing.assert_array_equal(getattr(K, f"{name}_loops")(D, g, np.empty_like(D)), lit)
        np.testing.assert_allclose(getattr(K, f"{name}_numpy")(D, g, np.empty_like(D)), lit, rtol=1e-12, atol=1e-14)


@given(fields())
def test_smoothing_matches_scipy_gaussian_filter(case):
    """T3–T5 (columns then rows) equal scipy.ndimage.gaussian_filter with zero padding and the same
    truncation, i.e. the 2-D convolution of the right-hand side of T5."""
    D, _, sigma = case
    got = smooth("loops", D, gaussian_weights(sigma))
    want = ndi.gaussian_filter(D, (0, sigma, sigma, 0), mode="constant", cval=0.0, truncate=4.0)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_gaussian_weights_match_scipy_kernel():
    """T3: g is normalised, symmetric, of radius ⌊4σ + ½⌋, and is the response of scipy's 1-D filter to an impulse."""
    for sigma in (0.5, 1.0, 4.0):
        g = gaussian_weights(sigma)
        r = int(4 * sigma + 0.5)
        assert g.shape == (2 * r + 1,)
        assert abs(g.sum() - 1) < 1e-15 and np.array_equal(g, g[::-1])
        impulse = np.zeros(2 * r + 1)
        impulse[r] = 1.0
        np.testing.assert_allclose(ndi.gaussian_filter1d(impulse, sigma, mode="constant", truncate=4.0), g, rtol=1e-12)


def test_augmenter_is_seeded_and_shape_preserving(rng):
    """The same Generator state gives the same distorted batch (flat or image-shaped, float32 kept);
    the next draw differs; affine and elastic both move pixels but keep the ink in [0, 1]."""
    X = rng.random((1 * 12 * 10, 4)).astype(np.float32)
    for spec in ("affine", "elastic:8,2", "affine:rotate=5,shift=1+elastic:alpha=8,sigma=2"):
        aug = parse_augment(spec, (1, 12, 10))
        a = aug(X, np.random.default_rng([3, 1]))
        b = aug(X.reshape(1, 12, 10, 4), np.random.default_rng([3, 1]))
        assert a.dtype == np.float32 and a.shape == X.shape
        np.testing.assert_array_equal(a, b.reshape(a.shape))
        g = np.random.default_rng([3, 1])
        first, second = aug(X, g), aug(X, g)
        assert not np.array_equal(first, second) and not np.array_equal(first, X)
        assert first.min() >= 0 and first.max() <= 1 + 1e-6  # a convex combination of pixels and zeros


def test_elastic_source_points_are_identity_plus_alpha_times_smoothed_noise():
    """T6: the augmenter's elastic source points are (p, q) + α·(T4, T5 of the field), the field being
    the T7 draws j = 16 + u·W + v (two halves: row and column displacement)."""
    aug = parse_augment("elastic:5,1.5", (1, 6, 7))
    key = np.uint64(0x0123456789ABCDEF)
    Y, X = aug.source_points(key, 2)
    D = np.empty((2, 6, 7, 2))
    for u in range(6):
        for v in range(7):
            D[:, u, v, :] = K.draws_numpy(key, K.FIELD_J0 + u * 7 + v, np.empty((2, 1, 2)))[:, 0, :]
    S = 5 * smooth("literal", D, gaussian_weights(1.5))
    gy, gx = grid(6, 7, 2)
    np.testing.assert_allclose(Y, gy + S[0], rtol=0, atol=1e-13)
    np.testing.assert_allclose(X, gx + S[1], rtol=0, atol=1e-13)


# ------------------------------------------------------------------- the draws (T7)
#: the first outputs of SplitMix64 seeded with 0 (Steele et al.'s reference generator,
#: as in Vigna's splitmix64.c): z_1, z_2, z_3 = μ(γ), μ(2γ), μ(3γ)
SPLITMIX64_SEED0 = (0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F)


def test_draws_are_splitmix64_outputs():
    """T7 with k = 0, sample 0, j = 1, 2, 3 gives the published first SplitMix64 outputs, split into
    their top 24 bits and the next 24 as (m + ½)·2⁻²³ − 1; sample n is output 2³² n + j."""
    for form in FORMS:
        U = getattr(K, f"draws_{form}")(np.uint64(0), 1, np.empty((2, 3, 1)))
        for j, z in enumerate(SPLITMIX64_SEED0):
            assert U[0, j, 0] == ((z >> 40) + 0.5) * 2.0**-23 - 1
            assert U[1, j, 0] == (((z >> 16) & 0xFFFFFF) + 0.5) * 2.0**-23 - 1
    # sample 1 draws outputs 2³² + j: the key k = −2³²γ mod 2⁶⁴ turns them into outputs j of key 0
    k = np.uint64((-(2**32) * 0x9E3779B97F4A7C15) % 2**64)
    np.testing.assert_array_equal(K.draws_loops(k, 1, np.empty((2, 3, 2)))[:, :, 1],
                                  K.draws_loops(np.uint64(0), 1, np.empty((2, 3, 1)))[:, :, 0])


@given(st.integers(0, 2**64 - 1), st.integers(0, 1000), st.integers(1, 5), st.integers(1, 20))
def test_draws_forms_agree_bit_for_bit(key, j0, J, N):
    """T7: literal, loops and numpy forms give the same numbers bit for bit (integer arithmetic and an
    exact conversion), each on the grid (2m + 1)/2²⁴ − 1 inside (−1, 1)."""
    k = np.uint64(key)
    lit = K.draws_literal(k, j0, np.empty((2, J, N)))
    np.testing.assert_array_equal(K.draws_loops(k, j0, np.empty((2, J, N))), lit)
    np.testing.assert_array_equal(K.draws_numpy(k, j0, np.empty((2, J, N))), lit)
    m = (lit + 1) * 2.0**23 - 0.5
    assert np.array_equal(m, np.round(m)) and m.min() >= 0 and m.max() < 2**24
    assert np.array_equal(lit.astype(np.float32).astype(np.float64), lit)  # float32 holds them exactly


def test_draws_are_uniform_and_uncorrelated():
    """T7 over 2·10⁵ draws of one key: mean 0 and variance 1/3 of U(−1, 1) (5 standard errors), the two
    halves and neighbouring samples uncorrelated (|r| < 0.01), all ten deciles filled evenly (χ²)."""
    U = draws(np.uint64(12345), 16, 1000, 100)
    x = U.ravel()
    assert abs(x.mean()) < 5 * np.sqrt(1 / 3 / x.size)
    assert abs(x.var() - 1 / 3) < 5 * np.sqrt(4 / 45 / x.size)
    assert abs(np.corrcoef(U[0].ravel(), U[1].ravel())[0, 1]) < 0.01
    assert abs(np.corrcoef(U[0, :, :-1].ravel(), U[0, :, 1:].ravel())[0, 1]) < 0.01
    counts = np.histogram(x, bins=10, range=(-1, 1))[0]
    expect = x.size / 10
    assert ((counts - expect) ** 2 / expect).sum() < 30  # χ² with 9 degrees of freedom: p ≈ 4·10⁻⁴


def test_batch_key_comes_from_the_generator():
    """One key per batch from the batch Generator: the same state gives the same key, and the
    Generator moves on (the next batch gets another)."""
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    assert batch_key(a) == batch_key(b) and batch_key(a) != batch_key(np.random.default_rng(7))


# ------------------------------------------------------------- the fused form (T8)
@pytest.mark.parametrize("shape,N", [((1, 28, 28), 100), ((1, 28, 28), 37), ((2, 9, 13), 5), ((1, 12, 10), 17)])
@pytest.mark.parametrize("spec", ["affine", "elastic", "affine:rotate=20,shear=5,scale=0.2,shift=3+elastic:8,2",
                                  "elastic:0,4", "affine:rotate=90,shear=0,scale=0.5,shift=25"])
def test_fused_distortion_matches_the_exact_composition(shape, N, spec, rng):
    """T8 (float32, blocks of 16 samples) against T2, T4–T7 and T1 in their exact float64 forms with the
    same key: the same draws, so only float32 rounding apart (< 1e-5 on images in [0, 1]), for square
    and odd image shapes, two channels and batches that do not fill the last block. The last spec moves
    most source points past the grid's border row and column (where the fast form clamps them onto its
    zero border) or across it."""
    X = rng.random((int(np.prod(shape)), N)).astype(np.float32)
    aug = parse_augment(spec, shape)
    key = np.uint64(rng.integers(0, 2**64, dtype=np.uint64))
    fast, exact = aug.distort(X, key), aug.reference(X, key)
    assert fast.dtype == np.float32 and fast.shape == X.shape
    np.testing.assert_allclose(fast, exact, rtol=0, atol=1e-5)
    assert not np.allclose(fast, X, atol=1e-3) or spec == "elastic:0,4"


@pytest.mark.parametrize("ident", [False, True])
@pytest.mark.parametrize("C,H,W,N", [(1, 28, 28, 37), (2, 9, 13, 5)])
def test_fused_warp_matches_T1_at_any_source_point(C, H, W, N, ident, rng):
    """The warp stage of T8 (bordered pixel pairs, source points clamped onto the border, 64-bit
    gathers) against warp_loops (T1, float64) at the same source points: random points from 3
    pixels before the grid to 2 past it, and the edge cases of the clamp and the border (−1, 0,
    H − 1, H and just inside / outside them, far off). The points are multiples of 2⁻¹⁰, so
    float32 holds them and every sum that forms them exactly; only the weights and the
    products round: within 8 ulp of Σ |w A| per output pixel. The affine maps are the identity
    (zero ranges), so the warp's general path and its path without an affine part (``ident``)
    must both give them."""
    A = rng.random((C, H, W, N)).astype(np.float32)
    e = 2.0**-10
    edges_y = np.array([-40.0, -1 - e, -1.0, -1 + e, -0.25, 0.0, H - 1.0, H - 0.75, H - e, H, H + e, H + 40.0])
    edges_x = np.array([-40.0, -1 - e, -1.0, -1 + e, -0.25, 0.0, W - 1.0, W - 0.75, W - e, W, W + e, W + 40.0])
    Y = np.round(rng.uniform(-3, H + 2, (H, W, N)) / e) * e
    X = np.round(rng.uniform(-3, W + 2, (H, W, N)) / e) * e
    Y.reshape(-1)[:edges_y.size ** 2] = np.repeat(edges_y, edges_x.size)
    X.reshape(-1)[:edges_x.size ** 2] = np.tile(edges_x, edges_y.size)
    L = K.LANES
    B = -(-N // L)
    F, S = np.empty((B, 2, H, L * W), np.float32), np.zeros((B, 2, W, L * H), np.float32)
    M, P = np.empty((B, 6, L), np.float32), np.empty((B, 2 * C * (H + 3) * (W + 2) * L), np.float32)
    K._draws_fast(A.reshape(-1), C, H, W, N, np.uint64(5), np.zeros(4), 0.0, F, M, P.view(np.uint64))
    np.testing.assert_array_equal(M[:, :4], np.tile(np.array([1, 0, 0, 1], np.float32)[:, None], (B, 1, L)))
    p = np.arange(H, dtype=np.float32)[:, None, None]
    q = np.arange(W, dtype=np.float32)[None, :, None]
    for d, (Z, base) in enumerate(((Y, p), (X, q))):  # S = source point − (p, q): the affine part adds (p, q) back
        Zb = np.zeros((H, W, B * L), np.float32)
        Zb[..., :N] = Z.astype(np.float32) - base
        S[:, d] = Zb.reshape(H, W, B, L).transpose(2, 1, 0, 3).reshape(B, W, H * L)
    out = np.full(A.shape, np.nan, np.float32)
    K._warp_fast(P.view(np.uint64), S, M, ident, C, H, W, N, out.reshape(-1))
    want = warp("loops", A.astype(np.float64), Y, X)
    size = warp("loops", np.abs(A).astype(np.float64), Y, X)
    assert np.all(np.abs(out - want) <= 8 * 2.0**-24 * size + 1e-30)
    assert np.count_nonzero(want) > 0 and np.count_nonzero(want == 0) > 0


def test_fused_distortion_does_not_depend_on_the_thread_count(rng):
    """T8 on 1 and on 2 threads gives the same bits (each block of 16 samples is computed alone)."""
    numba = pytest.importorskip("numba")
    X = rng.random((784, 50)).astype(np.float32)
    aug = parse_augment("affine+elastic", (1, 28, 28))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = aug.distort(X, np.uint64(99))
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = aug.distort(X, np.uint64(99))
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, two)


def test_band_matrix_is_the_smoothing_sum():
    """G_pu = g_{p−u} (zero past the radius): G D Gᵀ is T4 then T5 (float32 weights)."""
    g = gaussian_weights(1.5)
    D = np.random.default_rng(2).uniform(-1, 1, (2, 9, 11, 3))
    Gc, Gr = band_matrix(g, 9).astype(np.float64), band_matrix(g, 11).astype(np.float64)
    want = smooth("loops", D, g.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(np.einsum("pu,duvn,qv->dpqn", Gc, D, Gr), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n,sigma", [(28, 4.0), (9, 1.5), (13, 2.0), (64, 4.0), (1, 1.0), (2, 3.0)])
def test_mirror_matrix_regroups_the_band_sum(n, sigma):
    """T8's mirrored sums: β G′ β x = G x (G_pu = g_{p−u}) for even and odd n, a band wider
    than the image and one narrower; G′ is zero outside the column intervals its row pairs
    declare; and it has about n²/2 nonzero terms where the band has more (n = 28, r = 16)."""
    g = gaussian_weights(sigma)
    Gm, R = mirror_matrix(g, n)
    e = n // 2
    X = np.random.default_rng(n).uniform(-1, 1, (n, 3))

    def beta(Z):
        Z = Z.copy()
        a, b = Z[:e].copy(), Z[::-1][:e].copy()
        Z[:e], Z[n - e:] = a + b, (a - b)[::-1]
        return Z

    want = band_matrix(g, n).astype(np.float64) @ X
    np.testing.assert_allclose(beta(Gm.astype(np.float64) @ beta(X)), want, rtol=0, atol=3e-7 * np.abs(X).sum(0).max())
    for i in range(R.shape[0]):
        inside = np.zeros(n, bool)
        inside[R[i, 0]:R[i, 1]] = inside[R[i, 2]:R[i, 3]] = True
        rows = Gm[2 * i:2 * i + 2]
        assert not np.any(rows[:, ~inside]), (i, R[i])
    if n == 28:
        assert np.count_nonzero(Gm) == 14 * 14 * 2 < np.count_nonzero(band_matrix(g, n)) == 652


@pytest.mark.parametrize(
    "spec,message",
    [
        ("rotate", "expected affine"),
        ("affine:spin=3", "unknown option 'spin'"),
        ("affine:rotate=x", "expected a number"),
        ("affine:scale=1.5", "scale"),
        ("elastic:34,4,1", "in order"),
        ("elastic:sigma=0", "sigma"),
        ("elastic+elastic", "once each"),
        ("elastic:alpha=nan", "finite"),
    ],
)
def test_parse_augment_rejects_bad_specs(spec, message):
    """Bad --augment strings raise a ValueError that names --augment and the offending part."""
    with pytest.raises(ValueError, match=message) as info:
        parse_augment(spec, (1, 28, 28))
    assert "--augment" in str(info.value)


def test_parse_augment_reads_defaults_positions_and_keys():
    """Positional and key=value options give the same distortion; none / empty give no augmenter;
    data without an image shape are refused."""
    assert parse_augment("elastic:34,4", (1, 28, 28)).spec() == parse_augment("elastic:sigma=4,alpha=34", (1, 28, 28)).spec()
    assert parse_augment("affine", (1, 28, 28)).affine == Affine()
    assert parse_augment("affine:12,8,0.15,3", (1, 28, 28)).affine == Affine(rotate=12, shear=8, scale=0.15, shift=3)
    assert parse_augment(None, None) is None and parse_augment("none", None) is None
    with pytest.raises(ValueError, match="image_shape"):
        parse_augment("affine", None)
    with pytest.raises(ValueError, match="expected a batch of images"):
        Augmenter([Elastic()], (1, 4, 4))(np.zeros((15, 2)), np.random.default_rng(0))


# ------------------------------------------------------------------------- the trainer's hook
def digits_trainer(tmp_path, name, **kw):
    from indexnet.data import load
    from indexnet.train.trainer import Trainer, resolve_config

    cfg = resolve_config(data="digits", layers="16:relu,10:softmax", optimizer="momentum", lr=0.05, batch_size=128,
                         epochs=3, engine="numpy", dtype="float64", seed=4, train_eval_size=50, **kw)
    return Trainer(cfg, splits=load("digits"), out=tmp_path / name, log=None)


def test_augmented_training_resumes_bit_for_bit(tmp_path):
    """--augment draws from the batch Generator, which every checkpoint stores: 3 epochs straight ==
    a crash in epoch 3 and --resume from the epoch-2 checkpoint (parameters, Generator, history);
    the distortions do change the run (another history than without --augment)."""
    from indexnet.train.trainer import Trainer

    spec = "affine:rotate=15,shift=1+elastic:8,2"
    straight = digits_trainer(tmp_path, "a", augment=spec)
    straight.fit()
    broken = digits_trainer(tmp_path, "b", augment=spec)
    step, calls = broken._step, []

    def crash_in_epoch_3(X, Y):
        calls.append(1)
        if len(calls) == 2 * broken.steps_per_epoch + 2:
            raise KeyboardInterrupt
        return step(X, Y)

    crash_in_epoch_3.sync = getattr(step, "sync", lambda: None)  # the step's own sync, if it has one
    broken._step = crash_in_epoch_3
    with pytest.raises(KeyboardInterrupt):
        broken.fit()
    resumed = Trainer.resume(tmp_path / "b" / "checkpoint.npz", log=None)
    assert resumed.config.augment == spec and resumed.epoch == 2
    resumed.fit()
    for pa, pb in zip(straight.net.params, resumed.net.params):
        for x, y in zip(pa, pb):
            np.testing.assert_array_equal(x, y)
    assert straight.rng.bit_generator.state == resumed.rng.bit_generator.state
    drop = ("seconds", "eval_seconds")
    assert [{k: v for k, v in r.items() if k not in drop} for r in straight.history] == \
           [{k: v for k, v in r.items() if k not in drop} for r in resumed.history]
    plain = digits_trainer(tmp_path, "c")
    plain.fit(until_epoch=1)
    assert plain.history[0]["train_loss"] != straight.history[0]["train_loss"]


def test_augment_needs_images_and_a_valid_spec(tmp_path):
    """A bad --augment string fails when the configuration is built, data without an image shape when
    the trainer is; both messages name --augment."""
    from indexnet.train.trainer import Trainer, resolve_config

    with pytest.raises(ValueError, match="--augment elastic: unknown option 'beta'"):
        resolve_config(data="digits", augment="elastic:beta=3")
    with pytest.raises(ValueError, match="--augment: expected images"):
        Trainer(resolve_config(data="square", augment="affine", epochs=1), log=None)


def test_mnist_presets_carry_their_distortions():
    """mnist-affine / mnist-elastic train seed 001's 784-800-10 with distortions; mnist-cnn a conv net."""
    from indexnet.train.trainer import resolve_config

    aff = resolve_config("mnist-affine", data_dir="x")
    ela = resolve_config("mnist-elastic", data_dir="x")
    cnn = resolve_config("mnist-cnn", data_dir="x")
    assert aff.layers == ela.layers == resolve_config("seed001", data_dir="x").layers
    assert aff.augment.startswith("affine") and ela.augment == "elastic:34,4"
    assert cnn.layers.startswith("conv") and cnn.augment and cnn.data == "mnist"
    assert resolve_config("mnist-affine", data_dir="x", augment="none").augment == "none"
