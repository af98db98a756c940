"""Distortions: the bilinear warp and the separated Gaussian smoothing.

Beside ``derivations/augment.md``. Shapes (samples last)::

    A, out   (C, H, W, N)     images, and the warped images (same grid)
    Y, X     (H, W, N)        source point (y_pqn, x_pqn) of every output pixel, float64
    D, out   (C, H, W, N)     a field (C = 2 displacement components) and its smoothing
    g        (2r + 1,)        Gaussian weights, g[k + r] = g_k (eq. T3)
    U        (2, J, N)        uniform draws of the counter-based generator (eq. T7)

Index names follow the derivation: (p, q) output pixel, (u, v) input pixel, n sample,
c channel (or displacement component). Off the grid the image and the field are zero.
Every loops form visits only the terms the literal sum does not multiply by an exact
zero, in the literal order, so literal == loops bit for bit. Weights and sums are
float64; the result is stored in ``out``'s dtype.
"""
import numba
import numpy as np
from llvmlite import ir as llvm_ir
from numba import prange
from numba.extending import intrinsic

from indexnet._jit import exact, fastform, fastinline, fastserial, literal, serial


@serial
def tent(t):
    """κ(t) = max(0, 1 − |t|), the bilinear weight of derivations/augment.md#T1."""
    a = 1.0 - abs(t)
    return a if a > 0.0 else 0.0


@serial
def band(g, k):
    """g_k of derivations/augment.md#T3 extended by zero: g[k + r] for |k| ≤ r, else 0."""
    r = (g.shape[0] - 1) // 2
    if k < -r or k > r:
        return 0.0
    return g[k + r]


# ------------------------------------------------------------------------------ warp
@literal
def warp_literal(A, Y, X, out):
    """A′_cpqn = Σ_u Σ_v κ(y_pqn − u) κ(x_pqn − v) A_cuvn over the whole grid. derivations/augment.md#T1"""
    C, H, W, N = A.shape
    Ho, Wo = out.shape[1], out.shape[2]
    for c in range(C):
        for p in range(Ho):
            for q in range(Wo):
                for n in range(N):
                    acc = 0.0
                    for u in range(H):
                        for v in range(W):
                            acc += tent(Y[p, q, n] - u) * tent(X[p, q, n] - v) * A[c, u, v, n]
                    out[c, p, q, n] = acc
    return out


@exact
def warp_loops(A, Y, X, out):
    """A′_cpqn from the four pixels u ∈ {u₀, u₀+1}, v ∈ {v₀, v₀+1}, u₀ = ⌊y_pqn⌋, v₀ = ⌊x_pqn⌋. derivations/augment.md#T1

    ``prange`` over output rows (c, p). The two weights of each axis are computed once,
    κ(y − u₀) and κ(y − (u₀ + 1)), the values the literal form computes for those u. A
    neighbour off the grid gets weight zero (its index clamped onto the grid): an exact
    zero term, as every other term of the literal sum, so the loop has no branch.
    """
    C, H, W, N = A.shape
    Ho, Wo = out.shape[1], out.shape[2]
    for t in prange(C * Ho):
        c = np.int64(t) // Ho
        p = np.int64(t) % Ho
        for q in range(Wo):
            for n in range(N):
                y = Y[p, q, n]
                x = X[p, q, n]
                u0 = np.int64(np.floor(y))
                v0 = np.int64(np.floor(x))
                u1 = u0 + 1
                v1 = v0 + 1
                wy0 = tent(y - u0) if 0 <= u0 < H else 0.0
                wy1 = tent(y - u1) if 0 <= u1 < H else 0.0
                wx0 = tent(x - v0) if 0 <= v0 < W else 0.0
                wx1 = tent(x - v1) if 0 <= v1 < W else 0.0
                u0 = min(max(u0, 0), H - 1)
                u1 = min(max(u1, 0), H - 1)
                v0 = min(max(v0, 0), W - 1)
                v1 = min(max(v1, 0), W - 1)
                acc = 0.0
                acc += wy0 * wx0 * A[c, u0, v0, n]
                acc += wy0 * wx1 * A[c, u0, v1, n]
                acc += wy1 * wx0 * A[c, u1, v0, n]
                acc += wy1 * wx1 * A[c, u1, v1, n]
                out[c, p, q, n] = acc
    return out


def warp_numpy(A, Y, X, out):
    """A′ as four gathers of the corner pixels, each weighted and masked off the grid. derivations/augment.md#T1"""
    C, H, W, N = A.shape
    n = np.arange(N)
    y0 = np.floor(Y).astype(np.int64)
    x0 = np.floor(X).astype(np.int64)
    acc = np.zeros((C,) + Y.shape)
    for dy in (0, 1):
        u = y0 + dy
        wy = np.maximum(0.0, 1.0 - np.abs(Y - u))
        for dx in (0, 1):
            v = x0 + dx
            w = wy * np.maximum(0.0, 1.0 - np.abs(X - v))
            inside = (u >= 0) & (u < H) & (v >= 0) & (v < W)
            pix = A[:, np.clip(u, 0, H - 1), np.clip(v, 0, W - 1), n]
            acc += np.where(inside, w, 0.0) * pix
    out[...] = acc
    return out


# ---------------------------------------------------------------- smoothing, columns
@literal
def smooth_columns_literal(D, g, out):
    """E_dpvn = Σ_u g_{p−u} D_duvn over the whole column, g zero beyond radius r. derivations/augment.md#T4"""
    C, H, W, N = D.shape
    for d in range(C):
        for p in range(H):
            for v in range(W):
                for n in range(N):
                    acc = 0.0
                    for u in range(H):
                        acc += band(g, p - u) * D[d, u, v, n]
                    out[d, p, v, n] = acc
    return out


@exact
def smooth_columns_loops(D, g, out):
    """E_dpvn = Σ_{u=max(0,p−r)}^{min(H−1,p+r)} g_{p−u} D_duvn, ``prange`` over rows (d, p). derivations/augment.md#T4

    Each iteration owns the row out[d, p] and adds the terms u in increasing order to
    every element of it (the inner loops over (v, n) are contiguous and vectorize); with
    a float64 ``out`` the sums are those of :func:`smooth_columns_literal`, bit for bit.
    """
    C, H, W, N = D.shape
    r = (g.shape[0] - 1) // 2
    for t in prange(C * H):
        d = np.int64(t) // H  # the prange index may be unsigned: p - r below can be negative
        p = np.int64(t) % H
        for v in range(W):
            for n in range(N):
                out[d, p, v, n] = 0.0
        for u in range(max(p - r, 0), min(p + r + 1, H)):
            w = g[p - u + r]
            for v in range(W):
                for n in range(N):
                    out[d, p, v, n] += w * D[d, u, v, n]
    return out


def smooth_columns_numpy(D, g, out):
    """E = Σ_k g_k D shifted by k rows, zero-filled. derivations/augment.md#T4"""
    H = D.shape[1]
    r = (g.shape[0] - 1) // 2
    acc = np.zeros(D.shape)
    for k in range(-r, r + 1):  # E[p] += g_k D[p − k]
        if abs(k) < H:
            acc[:, max(k, 0) : H + min(k, 0)] += g[k + r] * D[:, max(-k, 0) : H - max(k, 0)]
    out[...] = acc
    return out


# ------------------------------------------------------------------- smoothing, rows
@literal
def smooth_rows_literal(E, g, out):
    """D̄_dpqn = Σ_v g_{q−v} E_dpvn over the whole row, g zero beyond radius r. derivations/augment.md#T5"""
    C, H, W, N = E.shape
    for d in range(C):
        for p in range(H):
            for q in range(W):
                for n in range(N):
                    acc = 0.0
                    for v in range(W):
                        acc += band(g, q - v) * E[d, p, v, n]
                    out[d, p, q, n] = acc
    return out


@exact
def smooth_rows_loops(E, g, out):
    """D̄_dpqn = Σ_{v=max(0,q−r)}^{min(W−1,q+r)} g_{q−v} E_dpvn, ``prange`` over rows (d, p). derivations/augment.md#T5

    Samples innermost (contiguous); with a float64 ``out`` the sums are those of
    :func:`smooth_rows_literal`, bit for bit.
    """
    C, H, W, N = E.shape
    r = (g.shape[0] - 1) // 2
    for t in prange(C * H):
        d = np.int64(t) // H
        p = np.int64(t) % H
        for q in range(W):
            for n in range(N):
                out[d, p, q, n] = 0.0
            for v in range(max(q - r, 0), min(q + r + 1, W)):
                w = g[q - v + r]
                for n in range(N):
                    out[d, p, q, n] += w * E[d, p, v, n]
    return out


def smooth_rows_numpy(E, g, out):
    """D̄ = Σ_k g_k E shifted by k columns, zero-filled. derivations/augment.md#T5"""
    W = E.shape[2]
    r = (g.shape[0] - 1) // 2
    acc = np.zeros(E.shape)
    for k in range(-r, r + 1):
        if abs(k) < W:
            acc[:, :, max(k, 0) : W + min(k, 0)] += g[k + r] * E[:, :, max(-k, 0) : W - max(k, 0)]
    out[...] = acc
    return out


# ------------------------------------------------------------ counter-based draws (T7)
@serial
def splitmix(z):
    """The SplitMix64 finaliser μ(z) of derivations/augment.md#T7 (uint64 in, uint64 out)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@serial
def draw_bits(key, n, j):
    """z = μ(k + (2³² n + j) γ) mod 2⁶⁴, the bits of draw j of sample n (derivations/augment.md#T7)."""
    i = (np.uint64(n) << np.uint64(32)) + np.uint64(j)
    return splitmix(np.uint64(key) + i * np.uint64(0x9E3779B97F4A7C15))


@serial
def uniform_hi(z):
    """U = (⌊z / 2⁴⁰⌋ + ½) 2⁻²³ − 1: the top 24 bits of z as a uniform on (−1, 1) (derivations/augment.md#T7)."""
    return (np.float64(z >> np.uint64(40)) + 0.5) * 2.0**-23 - 1.0


@serial
def uniform_lo(z):
    """U = ((⌊z / 2¹⁶⌋ mod 2²⁴) + ½) 2⁻²³ − 1: the next 24 bits of z (derivations/augment.md#T7)."""
    return (np.float64((z >> np.uint64(16)) & np.uint64(0xFFFFFF)) + 0.5) * 2.0**-23 - 1.0


@literal
def draws_literal(key, j0, out):
    """U_hjn = U_h(z(k, n, j0 + j)), h = 0 the top 24 bits, h = 1 the next 24. derivations/augment.md#T7"""
    _, J, N = out.shape
    for h in range(2):
        for j in range(J):
            for n in range(N):
                z = draw_bits(key, n, j0 + j)
                out[h, j, n] = uniform_hi(z) if h == 0 else uniform_lo(z)
    return out


@exact
def draws_loops(key, j0, out):
    """U_hjn for both halves h of one z(k, n, j0 + j), ``prange`` over draws j. derivations/augment.md#T7

    Integer arithmetic and an exact conversion (24 bits fit any float): the same values
    as :func:`draws_literal` bit for bit, in any order and on any number of threads.
    """
    _, J, N = out.shape
    for j in prange(J):
        for n in range(N):
            z = draw_bits(key, n, j0 + j)
            out[0, j, n] = uniform_hi(z)
            out[1, j, n] = uniform_lo(z)
    return out


def draws_numpy(key, j0, out):
    """U_hjn with uint64 arrays (NumPy's unsigned arithmetic wraps mod 2⁶⁴). derivations/augment.md#T7"""
    _, J, N = out.shape
    u64 = np.uint64
    i = (np.arange(N, dtype=u64)[None, :] << u64(32)) + (u64(j0) + np.arange(J, dtype=u64))[:, None]
    z = u64(key) + i * u64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> u64(30))) * u64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> u64(27))) * u64(0x94D049BB133111EB)
    z = z ^ (z >> u64(31))
    out[0] = ((z >> u64(40)).astype(np.float64) + 0.5) * 2.0**-23 - 1.0
    out[1] = (((z >> u64(16)) & u64(0xFFFFFF)).astype(np.float64) + 0.5) * 2.0**-23 - 1.0
    return out


# ------------------------------------------------------------ the fused distortion (T8)
#: the samples of one block of the fused form: one vector register of float32
LANES = 16
#: the first draw index j of the elastic field (j = 0, 1, 2 are the affine parameters)
FIELD_J0 = 16


@fastinline
def _bits_fast(key, n, j):
    """:func:`draw_bits` inlined into the fast form (derivations/augment.md#T7)."""
    z = np.uint64(key) + ((np.uint64(n) << np.uint64(32)) + np.uint64(j)) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@fastinline
def _hi32(z):
    """:func:`uniform_hi` in float32 (exact: 24 bits) (derivations/augment.md#T7)."""
    return np.float32(np.int64(z >> np.uint64(40))) * np.float32(2.0**-23) + np.float32(2.0**-24 - 1.0)


@fastinline
def _lo32(z):
    """:func:`uniform_lo` in float32 (exact) (derivations/augment.md#T7)."""
    return (np.float32(np.int64((z >> np.uint64(16)) & np.uint64(0xFFFFFF))) * np.float32(2.0**-23)
            + np.float32(2.0**-24 - 1.0))


@fastserial
def _band_sums(G, R, X, Y, alpha):
    """Y_pj = α Σ_u G_pu X_uj over the columns u where G may be nonzero: for the rows p, p + 1
    (pair i = p / 2) the intervals R[i, 0] ≤ u < R[i, 1] and R[i, 2] ≤ u < R[i, 3]
    (derivations/augment.md#T8; T4 on the mirrored field, T5 on its transposition). Two rows
    and four terms u per pass over j (then two, then one), so each load of X feeds eight
    multiply-adds; the loop over j is unit-stride. Terms outside a row's own support have
    G_pu = 0, exact zeros; with P odd the last row is its own second row, with weights zero."""
    P, J = Y.shape
    for p in range(0, P, 2):
        p1 = min(p + 1, P - 1)
        beta = alpha if p1 > p else alpha - alpha
        y0 = Y[p]
        y1 = Y[p1]
        for j in range(J):
            y0[j] = 0.0
            y1[j] = 0.0
        i = p // 2
        for seg in range(2):
            u = R[i, 2 * seg]
            u1 = R[i, 2 * seg + 1]
            while u + 4 <= u1:
                a0, a1, a2, a3 = alpha * G[p, u], alpha * G[p, u + 1], alpha * G[p, u + 2], alpha * G[p, u + 3]
                c0, c1, c2, c3 = beta * G[p1, u], beta * G[p1, u + 1], beta * G[p1, u + 2], beta * G[p1, u + 3]
                x0, x1, x2, x3 = X[u], X[u + 1], X[u + 2], X[u + 3]
                for j in range(J):
                    v0, v1, v2, v3 = x0[j], x1[j], x2[j], x3[j]
                    y0[j] += a0 * v0 + a1 * v1 + a2 * v2 + a3 * v3
                    y1[j] += c0 * v0 + c1 * v1 + c2 * v2 + c3 * v3
                u += 4
            if u + 2 <= u1:
                a0, a1 = alpha * G[p, u], alpha * G[p, u + 1]
                c0, c1 = beta * G[p1, u], beta * G[p1, u + 1]
                x0, x1 = X[u], X[u + 1]
                for j in range(J):
                    v0, v1 = x0[j], x1[j]
                    y0[j] += a0 * v0 + a1 * v1
                    y1[j] += c0 * v0 + c1 * v1
                u += 2
            if u < u1:
                a = alpha * G[p, u]
                c = beta * G[p1, u]
                x = X[u]
                for j in range(J):
                    y0[j] += a * x[j]
                    y1[j] += c * x[j]


def distort_fast(A, key, affine, alpha, Gc, Rc, Gr, Rr, F, S, M, P, out):
    """A′ = T1 at the source points T2 + T6, all draws from T7 (key k), in float32. derivations/augment.md#T8

    ``affine`` = (θ_max, φ_max in radians, s_max, τ_max), zeros for no affine part; ``alpha``
    0 for no elastic part; ``Gc``, ``Rc`` (H) and ``Gr``, ``Rr`` (W) the mirrored Gaussian
    matrices G′ and their row pairs' column intervals (``data.augment.mirror_matrix``),
    float32 and int64. Samples go in blocks of 16 (``LANES``, one
    vector register of float32), stored innermost; B = ⌈N / 16⌉ blocks, float32 scratch from
    the caller: ``F`` (B, 2, H, 16 W) the field, ``S`` (B, 2, W, 16 H) the displacement,
    ``M`` (B, 6, 16) the affine maps, ``P`` (B, 2 · 16 C (H + 3)(W + 2)) the blocks' images
    as pixel pairs with a zero border (:func:`_copy_pairs`). Three compiled kernels, each a
    ``prange`` over two tasks per block, so that two threads get equal shares for any B:
    (1) :func:`_draws_fast`: the affine maps (T2), the field draws (T7) mirrored down the
    columns (β), and the pairs; (2) :func:`_smooth_fast`: the field smoothed down the columns
    (T4) and along the rows (T5) times α as the mirrored sums β G′ β, into S laid out
    (y or x, q, p, sample); (3)
    :func:`_warp_fast`: the affine source points added, and the warp (T1) from the pairs,
    stored into ``out`` (all three from one compiled call, :func:`_stages`). The last block's missing samples are computed from sample N − 1
    and not stored. A block's values do not depend on the thread count. Performance
    contract: two scratch arrays per task of the smoothing (E and its transpose,
    2 × 4 H W 16 bytes), no other allocation.
    """
    C, H, W, N = A.shape
    _stages(A.reshape(-1), C, H, W, N, np.uint64(key), np.asarray(affine, np.float64), float(alpha),
            Gc, Rc, Gr, Rr, F, S, M, P.view(np.uint64), out.reshape(-1))
    return out


@fastserial
def _stages(Af, C, H, W, N, key, affine, alpha, Gc, Rc, Gr, Rr, F, S, M, Pu, out):
    """The three stages of :func:`distort_fast` from one compiled call (one dispatch from Python
    instead of three: microseconds per batch) (derivations/augment.md#T8)."""
    _draws_fast(Af, C, H, W, N, key, affine, alpha, F, M, Pu)
    _smooth_fast(Gc, Rc, Gr, Rr, np.float32(alpha), F, S)
    ident = affine[0] == 0.0 and affine[1] == 0.0 and affine[2] == 0.0 and affine[3] == 0.0
    _warp_fast(Pu, S, M, ident, C, H, W, N, out)


@intrinsic
def _pair_lo(typingctx, z):
    """The float32 whose bits are the low 32 bits of the uint64 ``z`` (the first of a pixel
    pair, little-endian): a truncation and a bitcast, which vectorize."""
    sig = numba.types.float32(numba.types.uint64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.trunc(args[0], llvm_ir.IntType(32)), llvm_ir.FloatType())

    return sig, codegen


@intrinsic
def _pair_hi(typingctx, z):
    """The float32 whose bits are the high 32 bits of the uint64 ``z`` (the second of a pair)."""
    sig = numba.types.float32(numba.types.uint64)

    def codegen(context, builder, signature, args):
        i64 = llvm_ir.IntType(64)
        hi = builder.lshr(args[0], llvm_ir.Constant(i64, 32))
        return builder.bitcast(builder.trunc(hi, llvm_ir.IntType(32)), llvm_ir.FloatType())

    return sig, codegen


@intrinsic
def _butterfly_lanes(typingctx, dst, d00, d01, d10, d11, src, s00, s01, s10, s11):
    """The two mirror steps β of T8 on a 2 × 2 block of 16-lane vectors (``LANES``; 1-d float32
    arrays): with a, b, c, e = src[s00 + k], src[s01 + k], src[s10 + k], src[s11 + k] (the
    block [[a, b], [c, e]], rows p and H − 1 − p, columns v and W − 1 − v), β down the rows,
    (a + c, b + e; a − c, b − e), then β along them: dst[d00] = (a + c) + (b + e),
    dst[d01] = (a + c) − (b + e), dst[d10] = (a − c) + (b − e), dst[d11] = (a − c) − (b − e),
    each 16 lanes from one vector load, add and store."""
    if not (isinstance(dst, numba.types.Array) and isinstance(src, numba.types.Array)
            and dst.dtype == src.dtype == numba.types.float32 and dst.ndim == src.ndim == 1):
        return None
    ip = numba.types.intp
    sig = numba.types.void(dst, ip, ip, ip, ip, src, ip, ip, ip, ip)

    def codegen(context, builder, signature, args):
        ptr = llvm_ir.VectorType(llvm_ir.FloatType(), LANES).as_pointer()
        dd = context.make_array(signature.args[0])(context, builder, args[0]).data
        sd = context.make_array(signature.args[5])(context, builder, args[5]).data
        a, b, c, e = (builder.load(builder.bitcast(builder.gep(sd, [i]), ptr), align=4) for i in args[6:10])
        r0, r1 = builder.fadd(a, c), builder.fadd(b, e)
        r2, r3 = builder.fsub(a, c), builder.fsub(b, e)
        for i, x in zip(args[1:5], (builder.fadd(r0, r1), builder.fsub(r0, r1), builder.fadd(r2, r3), builder.fsub(r2, r3))):
            builder.store(x, builder.bitcast(builder.gep(dd, [i]), ptr), align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _pair(typingctx, a, b):
    """The uint64 holding the bits of the float32 ``a`` (low half) and ``b`` (high half): a
    pixel pair as :func:`_pair_lo` and :func:`_pair_hi` read it back (bitcasts and a shift,
    which vectorize)."""
    sig = numba.types.uint64(numba.types.float32, numba.types.float32)

    def codegen(context, builder, signature, args):
        i32, i64 = llvm_ir.IntType(32), llvm_ir.IntType(64)
        lo = builder.zext(builder.bitcast(args[0], i32), i64)
        hi = builder.zext(builder.bitcast(args[1], i32), i64)
        return builder.or_(lo, builder.shl(hi, llvm_ir.Constant(i64, 32)))

    return sig, codegen


@fastinline
def _copy_pairs(Af, H, W, N, nb, row, Pu):
    """Row ``row`` = c (H + 3) + u + 1 of every block's pixel pairs (``Pu``: P viewed as uint64):
    at column v + 1 and lane k, Pu[b, (row (W + 2) + v + 1) 16 + k] holds A_{c,u,v,n} (low
    half) and A_{c,u,v+1,n} (high half), n = 16 b + k (N − 1 past the batch), for
    u = −1 … H + 1, v = −1 … W, zero off the grid (derivations/augment.md#T8). A pair is
    the two pixels (u, v₀), (u, v₀ + 1) one row of T1's four needs: one 64-bit gather
    instead of two 32-bit ones. Reads A's rows (c, u, v, ·) whole, in address order."""
    L = LANES
    Hp, Wp = H + 3, W + 2
    c = row // Hp
    u = row - c * Hp - 1
    zero = np.float32(0.0)
    i0 = row * Wp * L
    if u < 0 or u >= H:
        for b in range(nb):
            for j in range(Wp * L):
                Pu[b, np.uint64(i0 + j)] = np.uint64(0)
        return
    a = (c * H + u) * W * N
    for vp in range(Wp):
        v = vp - 1
        i = i0 + vp * L
        a0 = a + max(v, 0) * N
        a1 = a + min(v + 1, W - 1) * N
        for b in range(nb):
            n0 = b * L
            if n0 + L <= N:
                if 0 <= v and v + 1 < W:
                    for k in range(L):
                        Pu[b, np.uint64(i + k)] = _pair(Af[np.uint64(a0 + n0 + k)], Af[np.uint64(a1 + n0 + k)])
                else:
                    for k in range(L):
                        x0 = Af[np.uint64(a0 + n0 + k)]
                        x1 = Af[np.uint64(a1 + n0 + k)]
                        Pu[b, np.uint64(i + k)] = _pair(x0 if 0 <= v < W else zero, x1 if v + 1 < W else zero)
            else:
                for k in range(L):
                    n = min(n0 + k, N - 1)
                    x0 = Af[np.uint64(a0 + n)]
                    x1 = Af[np.uint64(a1 + n)]
                    Pu[b, np.uint64(i + k)] = _pair(x0 if 0 <= v < W else zero, x1 if v + 1 < W else zero)


@fastform
def _draws_fast(Af, C, H, W, N, key, affine, alpha, F, M, Pu):
    """Stage (1) of :func:`distort_fast`: the affine maps M (T2) and the field of each block
    (T7), stored mirrored down the columns: F[b, d, u] = D_u + D_{H−1−u}, F[b, d, H−1−u] =
    D_u − D_{H−1−u} for u < H/2 (β of T8; an odd H's middle row as drawn), two tasks per
    block (halves of the pairs u); the pixel pairs of every block
    (:func:`_copy_pairs`), rows of A split evenly over the same tasks
    (derivations/augment.md#T8)."""
    L = LANES
    nb = M.shape[0]
    eH = H // 2
    h2 = (eH + 1) // 2
    R = C * (H + 3)
    theta_max, phi_max = affine[0], affine[1]
    s_max, tau_max = affine[2], affine[3]
    for t in prange(2 * nb):
        blk = t // 2
        half = t - 2 * blk
        n0 = blk * L
        if half == 0:
            for k in range(L):  # m00 m01 m10 m11 τ_y τ_x of each sample (T2)
                z0 = _bits_fast(key, n0 + k, 0)
                z1 = _bits_fast(key, n0 + k, 1)
                z2 = _bits_fast(key, n0 + k, 2)
                theta = theta_max * np.float64(_hi32(z0))
                phi = phi_max * np.float64(_lo32(z0))
                sy = 1.0 + s_max * np.float64(_hi32(z1))
                sx = 1.0 + s_max * np.float64(_lo32(z1))
                c, s, tn = np.cos(theta), np.sin(theta), np.tan(phi)
                M[blk, 0, k] = c / sy
                M[blk, 1, k] = s / sy
                M[blk, 2, k] = (-tn * c - s) / sx
                M[blk, 3, k] = (c - tn * s) / sx
                M[blk, 4, k] = tau_max * np.float64(_hi32(z2))
                M[blk, 5, k] = tau_max * np.float64(_lo32(z2))
        if alpha != 0.0:
            for u in range(half * h2, min(eH, (half + 1) * h2)):  # the pairs u, H − 1 − u, mirrored (β)
                ju = FIELD_J0 + u * W
                jm = FIELD_J0 + (H - 1 - u) * W
                for v in range(W):
                    for k in range(L):
                        z = _bits_fast(key, n0 + k, ju + v)
                        zm = _bits_fast(key, n0 + k, jm + v)
                        y, ym = _hi32(z), _hi32(zm)
                        x, xm = _lo32(z), _lo32(zm)
                        F[blk, 0, u, v * L + k] = y + ym
                        F[blk, 1, u, v * L + k] = x + xm
                        F[blk, 0, H - 1 - u, v * L + k] = y - ym
                        F[blk, 1, H - 1 - u, v * L + k] = x - xm
            if half == 1 and H > 2 * eH:  # an odd H's middle row, as drawn
                ju = FIELD_J0 + eH * W
                for v in range(W):
                    for k in range(L):
                        z = _bits_fast(key, n0 + k, ju + v)
                        F[blk, 0, eH, v * L + k] = _hi32(z)
                        F[blk, 1, eH, v * L + k] = _lo32(z)
        for row in range(t * R // (2 * nb), (t + 1) * R // (2 * nb)):
            _copy_pairs(Af, H, W, N, nb, row, Pu)
    return F


@fastinline
def _mirror_rows(X):
    """β of derivations/augment.md#T8 on the rows of X, in place: (X_u, X_{n−1−u}) becomes
    (X_u + X_{n−1−u}, X_u − X_{n−1−u}) for u < n/2; an odd n's middle row stays."""
    n, J = X.shape
    for u in range(n // 2):
        a = X[u]
        b = X[n - 1 - u]
        for j in range(J):
            x, y = a[j], b[j]
            a[j] = x + y
            b[j] = x - y


@fastform
def _smooth_fast(Gc, Rc, Gr, Rr, alpha, F, S):
    """Stage (2) of :func:`distort_fast`: S[b, d] = α (G F[b, d] Gᵀ)ᵀ as the mirrored sums
    β G′ β of derivations/augment.md#T8, one task per block and component: F holds the field
    already mirrored (β D, :func:`_draws_fast`); T4 with ``Gc`` (:func:`_band_sums`); β on its
    rows, the transposition and β on the transposed rows in one pass (:func:`_butterfly_lanes`);
    T5 times α with ``Gr`` into S, β on S's rows."""
    L = LANES
    nb = S.shape[0]
    H, W = S.shape[3] // L, S.shape[2]
    hH, hW = (H + 1) // 2, (W + 1) // 2
    HL = H * L
    for t in prange(2 * nb):
        blk = t // 2
        d = t - 2 * blk
        if alpha != 0.0:
            E = np.empty((H, W * L), np.float32)
            ET = np.empty((W, HL), np.float32)
            _band_sums(Gc, Rc, F[blk, d], E, np.float32(1.0))
            e, et = E.reshape(-1), ET.reshape(-1)
            for p in range(hH):  # β down E's columns, the transposition, β down ET's: ET = β (β E)ᵀ
                p2 = H - 1 - p
                for v in range(hW):
                    v2 = W - 1 - v
                    if p < p2 and v < v2:
                        _butterfly_lanes(et, (v * H + p) * L, (v2 * H + p) * L, (v * H + p2) * L, (v2 * H + p2) * L,
                                         e, (p * W + v) * L, (p * W + v2) * L, (p2 * W + v) * L, (p2 * W + v2) * L)
                    else:  # the middle row or column of an odd H or W: β leaves it
                        for k in range(L):
                            a, b = E[p, v * L + k], E[p, v2 * L + k]
                            c, x = E[p2, v * L + k], E[p2, v2 * L + k]
                            if p < p2:
                                a, c = a + c, a - c  # b, x are a, c (v = v2)
                                ET[v, p * L + k], ET[v, p2 * L + k] = a, c
                            elif v < v2:
                                ET[v, p * L + k], ET[v2, p * L + k] = a + b, a - b
                            else:
                                ET[v, p * L + k] = a
            _band_sums(Gr, Rr, ET, S[blk, d], alpha)
            _mirror_rows(S[blk, d])
        else:
            for q in range(W):
                for j in range(HL):
                    S[blk, d, q, j] = 0.0
    return S


@fastform
def _warp_fast(Pu, S, M, ident, C, H, W, N, out):
    """Stage (3) of :func:`distort_fast`: the affine source points (T2) plus the displacement,
    and the warp (T1) from the pixel pairs (``Pu``: P viewed as uint64, one pair each),
    stored into ``out`` (flat); two tasks per block, columns q split in halves
    (derivations/augment.md#T8).

    A source point is first clamped to [−1, H] × [−1, W]: past the grid T1's weights are all
    zero, and so are the pairs' pixels there, so the clamp changes no term (a point beyond
    −1 or H moves onto the border, whose four pixels are zero). Then u₀ = ⌊y⌋ ∈ [−1, H],
    v₀ = ⌊x⌋ ∈ [−1, W], the pairs (u₀, v₀ … v₀ + 1) and (u₀ + 1, v₀ … v₀ + 1) exist, and
    the weights are κ(y − u₀) = 1 − (y − u₀), κ(y − u₀ − 1) = y − u₀ with no test. The
    pairs' flat indices are computed in float32 (exact: integers below 2²⁴) and converted
    once each, unsigned with the sign bit masked, so that the two gathers take 32-bit
    indices. With ``ident`` (no affine part: M = I and τ = 0 exactly, the draws times zero
    ranges) T2's point c + M((p, q) − c − τ) is (p, q) itself and is not formed."""
    L = LANES
    nb = S.shape[0]
    Hp, Wp = H + 3, W + 2
    WpL = np.float32(Wp * L)
    Lf = np.float32(L)
    W2 = (W + 1) // 2
    cy = np.float32(0.5 * (H - 1))
    cx = np.float32(0.5 * (W - 1))
    for t in prange(2 * nb):
        blk = t // 2
        half = t - 2 * blk
        n0 = blk * L
        m = min(L, N - n0)
        for c in range(C):
            base = np.float32(((c * Hp + 1) * Wp + 1) * L)
            for q in range(half * W2, min(W, (half + 1) * W2)):
                rx0 = np.float32(q) - cx
                for p in range(H):
                    ry0 = np.float32(p) - cy
                    o = ((c * H + p) * W + q) * N + n0
                    if ident:  # no affine part: T2's point is (p, q) itself
                        for k in range(L):
                            y = S[blk, 0, q, p * L + k] + np.float32(p)
                            x = S[blk, 1, q, p * L + k] + np.float32(q)
                            val = _bilinear_pairs(Pu, blk, y, x, base + np.float32(k), H, W, WpL, Lf)
                            if k < m:
                                out[np.uint64(o + k)] = val
                    else:
                        for k in range(L):
                            ry = ry0 - M[blk, 4, k]
                            rx = rx0 - M[blk, 5, k]
                            y = S[blk, 0, q, p * L + k] + (cy + M[blk, 0, k] * ry + M[blk, 1, k] * rx)
                            x = S[blk, 1, q, p * L + k] + (cx + M[blk, 2, k] * ry + M[blk, 3, k] * rx)
                            val = _bilinear_pairs(Pu, blk, y, x, base + np.float32(k), H, W, WpL, Lf)
                            if k < m:
                                out[np.uint64(o + k)] = val
    return out


@fastinline
def _bilinear_pairs(Pu, blk, y, x, bk, H, W, WpL, Lf):
    """T1 at the source point (y, x) from block ``blk``'s pixel pairs, ``bk`` the flat index of
    the lane's pixel (0, 0): the point clamped onto [−1, H] × [−1, W], two 64-bit gathers and
    the four weights (see :func:`_warp_fast`; derivations/augment.md#T8)."""
    one = np.float32(1.0)
    y = min(max(y, np.float32(-1.0)), np.float32(H))
    x = min(max(x, np.float32(-1.0)), np.float32(W))
    fy = np.floor(y)
    fx = np.floor(x)
    ty = y - fy
    tx = x - fx
    f0 = fy * WpL + fx * Lf + bk
    mask = np.uint32(0x7FFFFFFF)
    z0 = Pu[blk, np.uint32(f0) & mask]
    z1 = Pu[blk, np.uint32(f0 + WpL) & mask]
    return ((one - ty) * ((one - tx) * _pair_lo(z0) + tx * _pair_hi(z0))
            + ty * ((one - tx) * _pair_lo(z1) + tx * _pair_hi(z1)))
