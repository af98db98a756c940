"""Standalone BLAS throughput and the dense floor of the MNIST epoch.

Flops are counted honestly: a product of an (m × k) and a (k × n) matrix is m·n·k
multiply-adds, ``2·m·n·k`` flops. :func:`blas_gflops` times NumPy's ``matmul`` (OpenBLAS)
alone, with nothing else running in the process, on square matrices (the machine's
practical peak) and at given shapes.

The floor of one epoch of 784-800-10 (batch N) is the dense work of its steps at that
rate. Per step: layer 1 forward Z = W A (800 × 784 × N) and weight gradient H Aᵗ
(800 × 784 × N; layer 1 needs no input gradient), layer 2 forward, weight gradient and
input gradient (10 × 800 × N each). Elementwise work (activations, loss, bias, update)
is left out, so no trainer can beat the floor; :func:`epoch_floor` gives it at the peak
rate and :func:`measured_floor` times the same products with NumPy at the epoch's own
shapes.
"""
from __future__ import annotations

import time

import numpy as np

#: layer sizes of the MNIST epoch (seed 001's network)
MNIST_SIZES = (784, 800, 10)


def gemm_flops(m: int, n: int, k: int) -> float:
    """Flops of an (m × k)(k × n) product: 2 per multiply-add."""
    return 2.0 * m * n * k


def step_products(sizes=MNIST_SIZES, batch: int = 100) -> list[tuple[str, int, int, int]]:
    """The dense products (name, m, n, k) of one training step of a dense net.

    Each layer l: forward W A (S_l × N × S_{l-1}), weight gradient H Aᵗ (S_l × S_{l-1} × N),
    and, except the first layer, the input gradient Wᵗ H (S_{l-1} × N × S_l).
    """
    out = []
    for layer, (s_prev, s) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        out.append((f"layer {layer} forward", s, batch, s_prev))
        out.append((f"layer {layer} weight grad", s, s_prev, batch))
        if layer > 1:
            out.append((f"layer {layer} input grad", s_prev, batch, s))
    return out


def step_flops(sizes=MNIST_SIZES, batch: int = 100) -> float:
    """Flops of the dense products of one step (see :func:`step_products`)."""
    return sum(gemm_flops(m, n, k) for _, m, n, k in step_products(sizes, batch))


def epoch_floor(gflops: float, steps: int = 550, sizes=MNIST_SIZES, batch: int = 100) -> dict:
    """Seconds of one epoch's dense products at ``gflops`` GFLOP/s (the floor)."""
    if gflops <= 0:
        raise ValueError(f"gflops: expected a rate > 0, got {gflops}")
    flops = step_flops(sizes, batch) * steps
    return {"flops": flops, "gflops": gflops, "seconds": flops / (gflops * 1e9), "steps": steps, "batch": batch}


def _time_best(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def blas_gflops(dtype=np.float32, m: int = 1024, n: int = 1024, k: int = 1024, repeats: int = 5,
                seed: int = 0) -> dict:
    """GFLOP/s of NumPy's ``matmul`` (BLAS) on an (m × k)(k × n) product, best of ``repeats``."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, k)).astype(dtype)
    B = rng.standard_normal((k, n)).astype(dtype)
    C = np.empty((m, n), dtype)
    best = _time_best(lambda: np.matmul(A, B, out=C), repeats)
    return {"dtype": np.dtype(dtype).name, "shape": f"{m}x{k} @ {k}x{n}", "seconds": best,
            "gflops": gemm_flops(m, n, k) / best / 1e9}


def measured_floor(steps: int = 550, sizes=MNIST_SIZES, batch: int = 100, dtype=np.float32,
                   repeats: int = 3, seed: int = 0) -> dict:
    """One epoch's dense products timed with NumPy at their own shapes (best of ``repeats`` steps, × steps)."""
    rng = np.random.default_rng(seed)
    calls = []
    for _, m, n, k in step_products(sizes, batch):
        P = rng.standard_normal((m, k)).astype(dtype)
        Q = rng.standard_normal((k, n)).astype(dtype)
        C = np.empty((m, n), dtype)
        calls.append((P, Q, C))

    def step():
        for P, Q, C in calls:
            np.matmul(P, Q, out=C)

    best = _time_best(step, repeats)
    flops = step_flops(sizes, batch)
    return {"seconds": best * steps, "step_s": best, "gflops": flops / best / 1e9, "steps": steps}
