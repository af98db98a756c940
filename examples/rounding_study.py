"""The rounding-bound study of issue 13: soundness, tightness and power of the bounds of
derivations/rounding.md against PyTorch and NumPy in float32 (and NumPy in float16).

Run:  python examples/rounding_study.py [--dense 500] [--conv 100] [--fp16 200] [--seed 0]

Soundness: over random dense and conv networks (every activation and loss, depths 1-5,
N 1-64, layer sizes up to 256), float32 gradients from PyTorch autograd and from indexnet's
float32 NumPy engine (BLAS: another summation order), and float16 gradients from a NumPy
implementation that sums sequentially in float16, are compared with the float64 reference
at every element that is not kink-sensitive. Tightness: bound / actual error over the
elements whose error is not zero, for the worst-case and the probabilistic (λ = 4) bound.
Power: errors injected into the PyTorch float32 gradients, caught or not by the bound check
and by the blanket rtol that gives zero false failures on the same correct runs.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from indexnet.nn.layers.conv import Conv2D
from indexnet.nn.layers.dense import Dense
from indexnet.nn.layers.flatten import Flatten
from indexnet.nn.layers.pooling import AvgPool2D, MaxPool2D
from indexnet.nn.network import Network
from indexnet.oracle.bounds import Precision, network_bounds

ACTS = ["identity", "relu", "leaky_relu", "sigmoid", "tanh", "softplus"]
LOSSES = ["mse", "half_se", "euclidean", "cross_entropy", "binary_cross_entropy"]
BUGS = ["element off by 1e-3 (relative)", "dropped sigma' of one layer", "missing 1/N", "transposed square dW"]


# ------------------------------------------------------------------------------ networks
def random_dense(rng, k):
    L = int(rng.integers(1, 6))
    square = k % 3 == 0  # every third network has equal hidden sizes: square layers exist
    width = int(rng.integers(2, 257))
    sizes = [width] * (L + 1) if square else [int(s) for s in rng.integers(1, 257, L + 1)]
    loss = LOSSES[k % 5]
    acts = [ACTS[i] for i in rng.integers(0, len(ACTS), L)]
    if loss == "cross_entropy":
        acts[-1] = "softmax"
        sizes[-1] = max(2, sizes[-1] if not square else width)
    elif loss == "binary_cross_entropy":
        acts[-1] = "sigmoid"
    elif rng.random() < 0.2:
        acts[-1] = "softmax"
        sizes[-1] = max(2, sizes[-1])
    N = int(rng.integers(1, 65))
    net = Network([Dense(s, a) for s, a in zip(sizes[1:], acts)], (sizes[0],), loss, seed=k)
    X = rng.standard_normal((sizes[0], N))
    return net, X, targets(rng, loss, sizes[-1], N)


def random_conv(rng, k):
    C = int(rng.integers(1, 4))
    size = int(rng.integers(6, 13))
    loss = LOSSES[k % 5]
    layers = []
    shape = (C, size, size)
    for _ in range(int(rng.integers(1, 3))):
        kk = int(rng.integers(1, 4))
        layers.append(Conv2D(int(rng.integers(1, 9)), kk, stride=int(rng.integers(1, 3)), pad=int(rng.integers(0, 2)),
                             activation=ACTS[int(rng.integers(0, len(ACTS)))]))
        shape = layers[-1].output_shape(shape)
        if shape[1] >= 4 and rng.random() < 0.6:
            layers.append((MaxPool2D if rng.random() < 0.5 else AvgPool2D)(2))
            shape = layers[-1].output_shape(shape)
    layers.append(Flatten())
    out = int(rng.integers(2, 11))
    last = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}.get(loss, ACTS[int(rng.integers(0, len(ACTS)))])
    for _ in range(int(rng.integers(0, 2))):
        layers.append(Dense(int(rng.integers(2, 65)), ACTS[int(rng.integers(0, len(ACTS)))]))
    layers.append(Dense(out, last))
    N = int(rng.integers(1, 33))
    net = Network(layers, (C, size, size), loss, seed=k)
    return net, rng.standard_normal((C, size, size, N)), targets(rng, loss, out, N)


def targets(rng, loss, S, N):
    if loss == "cross_entropy":
        return np.ascontiguousarray(np.eye(S)[:, rng.integers(0, S, N)])
    if loss == "binary_cross_entropy":
        return rng.uniform(0, 1, (S, N))
    return rng.standard_normal((S, N))


# ------------------------------------------------------------------------ implementations
def torch_grads(net, X, Y, drop_sigma_at=None):
    """PyTorch float32 autograd of the same network (samples first inside)."""
    import torch
    import torch.nn.functional as F

    dt = torch.float32
    ps = [[torch.tensor(a, dtype=dt, requires_grad=True) for a in p] for p in net.params]
    A = torch.tensor(np.moveaxis(X, -1, 0).copy(), dtype=dt)
    Yt = torch.tensor(Y.T.copy(), dtype=dt)
    L = len(net.layers)
    name = net.loss_fn.name
    for l, (layer, p) in enumerate(zip(net.layers, ps)):
        if isinstance(layer, Dense):
            Z = A @ p[0].T + p[1]
        elif isinstance(layer, Conv2D):
            Z = F.conv2d(A, p[0], p[1], stride=layer.stride, padding=layer.pad)
        elif isinstance(layer, MaxPool2D):
            A = F.max_pool2d(A, layer.size, layer.stride)
            continue
        elif isinstance(layer, AvgPool2D):
            A = F.avg_pool2d(A, layer.size, layer.stride)
            continue
        else:
            A = A.reshape(A.shape[0], -1)
            continue
        act = layer.activation
        if l == L - 1 and name == "cross_entropy":
            J = -(Yt * torch.log_softmax(Z, 1)).sum() / Z.shape[0]
            break
        if l == L - 1 and name == "binary_cross_entropy":
            J = F.binary_cross_entropy_with_logits(Z, Yt, reduction="sum") / Z.shape[0]
            break
        fn = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "identity": lambda z: z,
              "softmax": lambda z: torch.softmax(z, 1), "leaky_relu": lambda z: F.leaky_relu(z, layer.alpha),
              "softplus": F.softplus}[act]
        A = fn(Z)
        if drop_sigma_at == l:
            A = Z + (A - Z).detach()  # same value, σ' replaced by 1 in the backward pass
    else:
        d = A - Yt
        N = A.shape[0]
        J = {"mse": (d * d).sum() / N, "half_se": 0.5 * (d * d).sum(), "euclidean": (d * d).sum() / (2 * N)}[name]
    J.backward()
    return [{k: t.grad.double().numpy() for k, t in zip(layer.param_names, p)} for layer, p in zip(net.layers, ps)]


def numpy32_grads(net, X, Y):
    """indexnet's float32 NumPy engine (BLAS order)."""
    net32 = Network(net.layers, net.input_shape, net.loss_fn.name, dtype=np.float32,
                    params=[tuple(a.astype(np.float32) for a in p) for p in net.params])
    return net32.backward(X.astype(np.float32), np.ascontiguousarray(Y.astype(np.float32)), "numpy").grads


def numpy16_grads(net, X, Y):
    """A float16 dense pass in NumPy: every product and every addition rounded to float16,
    sums sequential over the summed index (another order than BLAS)."""
    h = np.float16

    def dot(M, V):  # (S, T) @ (T, N), sequential float16 sum over T
        out = np.zeros((M.shape[0], V.shape[1]), h)
        for t in range(M.shape[1]):
            out = (out + (M[:, t : t + 1] * V[t : t + 1, :]).astype(h)).astype(h)
        return out

    def sigma(act, Z, alpha):
        with np.errstate(over="ignore"):
            if act == "relu":
                return np.maximum(Z, h(0))
            if act == "leaky_relu":
                return np.where(Z > 0, Z, (h(alpha) * Z).astype(h))
            if act == "sigmoid":
                return (h(1) / (h(1) + np.exp(-Z))).astype(h)
            if act == "tanh":
                return np.tanh(Z)
            if act == "softplus":
                return np.logaddexp(h(0), Z).astype(h)
            if act == "softmax":
                E = np.exp((Z - Z.max(axis=0)).astype(h))
                return (E / E.sum(axis=0, dtype=h)).astype(h)
        return Z

    Ws = [(W.astype(h), b.astype(h)) for W, b in net.params]
    A = X.astype(h)
    Yh = Y.astype(h)
    As, Zs = [A], []
    for (W, b), layer in zip(Ws, net.layers):
        Z = (dot(W, A) + b[:, None]).astype(h)
        A = sigma(layer.activation, Z, layer.alpha)
        Zs.append(Z)
        As.append(A)
    N = X.shape[1]
    name = net.loss_fn.name
    if name in ("cross_entropy", "binary_cross_entropy"):
        H = ((A - Yh) * h(1.0 / N)).astype(h)
    else:
        D = ((A - Yh) * h(2 * net.loss_fn.scale(N))).astype(h)
        H = None
    grads = [None] * len(Ws)
    for l in range(len(Ws) - 1, -1, -1):
        layer = net.layers[l]
        if H is None:
            act, Z, A = layer.activation, Zs[l], As[l + 1]
            if act == "softmax":
                d = (D * A).sum(axis=0, dtype=h)
                H = (A * (D - d).astype(h)).astype(h)
            else:
                ds = {"relu": (Z > 0).astype(h), "leaky_relu": np.where(Z > 0, h(1), h(layer.alpha)),
                      "sigmoid": (A * (h(1) - A)).astype(h), "tanh": (h(1) - (A * A).astype(h)).astype(h),
                      "identity": np.ones_like(Z), "softplus": (h(1) / (h(1) + np.exp(-Z))).astype(h)}[act]
                H = (D * ds).astype(h)
        W = Ws[l][0]
        grads[l] = {"W": dot(H, As[l].T).astype(np.float64), "b": H.sum(axis=1, dtype=h).astype(np.float64)}
        D = dot(W.T, H)
        H = None
    return grads


# ------------------------------------------------------------------------------ the study
def leaves(grads):
    return [(l, k) for l, g in enumerate(grads) for k in g]


def study(n_dense, n_conv, n_fp16, seed):
    rng = np.random.default_rng(seed)
    wc, pr = Precision("float32"), Precision("float32", method="probabilistic", lam=4.0)
    stats = {"elements": 0, "kink": 0, "viol_wc": 0, "viol_pr": 0, "runs_pr_false": 0, "runs": 0,
             "kink_H": 0, "H_elements": 0}
    ratios_wc, ratios_pr = [], []
    worst_rel = 0.0  # blanket r with atol = r·max|ref| per array, zero false failures
    worst_rtol = 0.0  # blanket rtol with atol = 0, zero false failures
    cases = []
    t0 = time.time()
    for k in range(n_dense + n_conv):
        net, X, Y = random_dense(rng, k) if k < n_dense else random_conv(rng, k)
        bp = net.backward(X, Y, "numpy")
        Bw = network_bounds(net, bp, X, Y, wc)
        Bp = network_bounds(net, bp, X, Y, pr)
        false_pr = False
        for impl in (torch_grads(net, X, Y), numpy32_grads(net, X, Y)):
            stats["runs"] += 1
            for l, p in leaves(bp.grads):
                ref, mine = bp.grads[l][p], impl[l][p]
                ok = ~Bw.kink.grads[l][p]
                err = np.abs(mine - ref)
                stats["elements"] += err.size
                stats["kink"] += int((~ok).sum())
                stats["viol_wc"] += int(((err > Bw.grads[l][p]) & ok).sum())
                vp = int(((err > Bp.grads[l][p]) & ok).sum())
                stats["viol_pr"] += vp
                false_pr |= vp > 0
                nz = ok & (err > 0)
                ratios_wc.append((Bw.grads[l][p] / np.where(nz, err, 1))[nz])
                ratios_pr.append((Bp.grads[l][p] / np.where(nz, err, 1))[nz])
                scale = np.abs(ref) + np.abs(ref).max()
                with np.errstate(invalid="ignore", divide="ignore"):
                    r = np.where(scale > 0, err / scale, np.where(err > 0, np.inf, 0))
                    r1 = np.where(np.abs(ref) > 0, err / np.abs(ref), np.where(err > 0, np.inf, 0))
                worst_rel = max(worst_rel, float(r.max(initial=0)))
                worst_rtol = max(worst_rtol, float(r1.max(initial=0)))
        stats["runs_pr_false"] += false_pr
        stats["kink_H"] += sum(int(m.sum()) for m in Bw.kink.H) + sum(int(m.sum()) for m in Bw.kink.Delta)
        stats["kink_H"] += int(Bw.kink.dX.sum())
        stats["H_elements"] += sum(h.size for h in bp.H)
        cases.append((net, X, Y, bp, Bw, Bp))
    t_dense = time.time() - t0

    fp16 = {"elements": 0, "kink": 0, "viol": 0, "nets": 0, "overflow": 0}
    ratios16 = []
    t0 = time.time()
    for k in range(n_fp16):
        net, X, Y = random_dense(rng, 10_000 + k)
        bp = net.backward(X, Y, "numpy")
        try:
            B = network_bounds(net, bp, X, Y, "float16")
        except ValueError:  # a sum with nu >= 1 (>= 2048 terms): no bound of this kind
            continue
        with np.errstate(all="ignore"):
            g16 = numpy16_grads(net, X, Y)
        if any(not np.isfinite(g[p]).all() for g in g16 for p in g):
            fp16["overflow"] += 1  # R1 assumes no overflow; such a pass has no bound
            continue
        fp16["nets"] += 1
        for l, p in leaves(bp.grads):
            ok = ~B.kink.grads[l][p]
            err = np.abs(g16[l][p] - bp.grads[l][p])
            fp16["elements"] += err.size
            fp16["kink"] += int((~ok).sum())
            fp16["viol"] += int(((err > B.grads[l][p]) & ok).sum())
            nz = ok & (err > 0)
            ratios16.append((B.grads[l][p] / np.where(nz, err, 1))[nz])
    t_fp16 = time.time() - t0

    # ------------------------------------------------------------------------- power
    t0 = time.time()
    power = {b: {"n": 0, "wc": 0, "pr": 0, "rtol": 0, "mixed": 0} for b in BUGS}
    for k, (net, X, Y, bp, Bw, Bp) in enumerate(cases):
        good = torch_grads(net, X, Y)
        N = X.shape[-1]
        variants = {}
        # one element off by a relative 1e-3, at a non-kink element with a non-zero value
        cand = [(l, p) for l, p in leaves(bp.grads) if (np.abs(good[l][p]) > 0).any()]
        if cand:
            l, p = cand[rng.integers(len(cand))]
            flat = np.flatnonzero((np.abs(good[l][p]) > 0) & ~Bw.kink.grads[l][p])
            if flat.size:
                bad = [{q: v.copy() for q, v in g.items()} for g in good]
                bad[l][p].flat[flat[rng.integers(flat.size)]] *= 1 + 1e-3
                variants[BUGS[0]] = bad
        hidden = [l for l, layer in enumerate(net.layers[:-1]) if getattr(layer, "activation", "identity")
                  in ("relu", "leaky_relu", "sigmoid", "tanh", "softplus", "softmax")]
        if hidden:
            variants[BUGS[1]] = torch_grads(net, X, Y, drop_sigma_at=hidden[rng.integers(len(hidden))])
        if net.loss_fn.reduction == "mean" and N > 1:
            variants[BUGS[2]] = [{q: v * N for q, v in g.items()} for g in good]
        square = [l for l, g in enumerate(good) if "W" in g and g["W"].shape[0] == g["W"].shape[1] > 1
                  and not np.allclose(g["W"], g["W"].T)]
        if square:
            l = square[rng.integers(len(square))]
            bad = [{q: v.copy() for q, v in g.items()} for g in good]
            bad[l]["W"] = np.ascontiguousarray(bad[l]["W"].T)
            variants[BUGS[3]] = bad
        for bug, grads in variants.items():
            power[bug]["n"] += 1
            for key, B in (("wc", Bw), ("pr", Bp)):
                power[bug][key] += any(
                    ((np.abs(grads[l][p] - bp.grads[l][p]) > B.grads[l][p]) & ~B.kink.grads[l][p]).any()
                    for l, p in leaves(bp.grads))
            power[bug]["mixed"] += any(
                (np.abs(grads[l][p] - bp.grads[l][p]) > worst_rel * (np.abs(bp.grads[l][p]) + np.abs(bp.grads[l][p]).max())).any()
                for l, p in leaves(bp.grads))
            power[bug]["rtol"] += any(
                (np.abs(grads[l][p] - bp.grads[l][p]) > worst_rtol * np.abs(bp.grads[l][p])).any()
                for l, p in leaves(bp.grads))
    t_power = time.time() - t0

    rw, rp = np.concatenate(ratios_wc), np.concatenate(ratios_pr)
    r16 = np.concatenate(ratios16) if ratios16 else np.zeros(1)
    print(f"networks: {n_dense} dense + {n_conv} conv, float32 (PyTorch autograd and indexnet float32 NumPy engine)")
    print(f"  gradient elements checked: {stats['elements']}, kink-sensitive (masked): {stats['kink']}; "
          f"kink-sensitive H elements and max-pool tie taps: {stats['kink_H']} of {stats['H_elements']} H elements "
          f"(their jump is carried on as a finite error, R10, R29)")
    print(f"  worst-case violations: {stats['viol_wc']}")
    print(f"  probabilistic (lam=4) violations: {stats['viol_pr']} elements, in {stats['runs_pr_false']} of "
          f"{n_dense + n_conv} networks")
    print(f"  tightness bound/error (elements with error > 0: {rw.size}):")
    print(f"    worst-case     median {np.median(rw):.3g}   p90 {np.percentile(rw, 90):.3g}   min {rw.min():.3g}")
    print(f"    probabilistic  median {np.median(rp):.3g}   p90 {np.percentile(rp, 90):.3g}   min {rp.min():.3g}")
    print(f"  blanket tolerances with zero false failures on these runs: rtol (atol = 0) {worst_rtol:.3g}; "
          f"rtol r with atol = r·max|ref| of the array: r = {worst_rel:.3g}")
    print(f"  time {t_dense:.0f} s")
    print(f"float16 (NumPy, sequential float16 sums): {fp16['nets']} dense networks "
          f"({fp16['overflow']} overflowed and were skipped), {fp16['elements']} elements, "
          f"{fp16['kink']} kink-sensitive, worst-case violations: {fp16['viol']}, "
          f"tightness median {np.median(r16):.3g} p90 {np.percentile(r16, 90):.3g}; time {t_fp16:.0f} s")
    print("power: injected into PyTorch float32 gradients; caught by")
    print(f"  {'bug':34s} {'runs':>5s} {'worst-case':>11s} {'probabilistic':>14s} {'blanket rtol':>13s} "
          f"{'rtol+max-atol':>14s}")
    for bug, c in power.items():
        n = max(c["n"], 1)
        print(f"  {bug:34s} {c['n']:5d} {c['wc'] / n:10.1%} {c['pr'] / n:13.1%} {c['rtol'] / n:12.1%} "
              f"{c['mixed'] / n:13.1%}")
    print(f"  time {t_power:.0f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dense", type=int, default=500)
    ap.add_argument("--conv", type=int, default=100)
    ap.add_argument("--fp16", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    study(args.dense, args.conv, args.fp16, args.seed)


if __name__ == "__main__":
    main()
