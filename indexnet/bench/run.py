"""``indexnet bench``: run the chosen sections and build the report.

Sections, in the order they run:

``blas``     standalone BLAS GFLOP/s (float32, float64) and the dense floor of the epoch
             (:mod:`indexnet.bench.blas`)
``kernels``  every dense and conv kernel form in GFLOP/s and as a fraction of that BLAS
             rate (:mod:`indexnet.bench.kernels`)
``epoch``    MNIST epoch 784-800-10: fast, numpy, PyTorch, JAX (:mod:`indexnet.bench.workloads`)
``tiny``     1-16-16-1 tanh step: fast, numpy, PyTorch
``cnn``      preset cnn epoch on MNIST images: fast, PyTorch
``startup``  ``indexnet train`` cold and warm, ``indexnet --help`` (:mod:`indexnet.bench.startup`)

Numba, OpenBLAS and PyTorch use the same thread count (2 by default); XLA takes every
core (recorded). Before each contender's turn the bench sleeps ``pause`` seconds so the
previous contender's spinning threads park (:mod:`indexnet.bench.timing`); the tiny step's
contenders run back to back in short rounds, with the pause between rounds.
"""
from __future__ import annotations

import os
import platform
from typing import Callable

import numpy as np

from indexnet.bench import blas as blas_mod
from indexnet.bench import contenders, kernels, startup, workloads
from indexnet.bench.report import Report, check_targets
from indexnet.bench.timing import DEFAULT_PAUSE, loadavg, set_threads, thread_env

SECTIONS = ("blas", "kernels", "epoch", "tiny", "cnn", "startup")


def run(sections=SECTIONS, quick: bool = False, threads: int = 2, data_dir: str | None = None,
        repeats: int | None = None, pause: float = DEFAULT_PAUSE, use_torch: bool = True, use_jax: bool = True,
        cold: bool = True, sizes: dict | None = None, log: Callable[[str], object] = print) -> Report:
    """Run ``sections`` and return the report.

    ``quick``: fewer repeats, a 6 000-sample epoch, no exact ``loops`` kernel build, no cold
    compile. ``sizes`` overrides shapes and counts (the tests use it to stay tiny): keys
    ``epoch_samples``, ``Ns``, ``S``, ``S_prev``, ``dtypes``, ``conv``, ``tiny_round_s``,
    ``blas_n``.
    """
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise ValueError(f"--only: unknown sections {unknown}; expected some of {list(SECTIONS)}")
    sizes = sizes or {}
    torch, why_torch = contenders.load("torch", use_torch)
    jax, why_jax = contenders.load("jax", use_jax) if "epoch" in sections else (None, "not used")
    cfg = {"sections": list(sections), "quick": quick, "threads": set_threads(threads, torch), "pause": pause,
           "python": platform.python_version(), "machine": platform.processor() or platform.machine(),
           "cpus": os.cpu_count(), "loadavg_start": loadavg(), "numpy": np.__version__,
           "torch": contenders.version(torch), "jax": contenders.version(jax),
           "xla_threads": contenders.jax_threads() if jax is not None else None,
           "skipped": {k: v for k, v in (("pytorch", why_torch), ("jax", why_jax)) if v and v != "not used"}}
    import numba

    cfg["numba"] = numba.__version__
    rep = Report(config=cfg)
    reps = repeats or (3 if quick else 7)
    epoch_reps = repeats or (2 if quick else 3)
    n = sizes.get("epoch_samples", 6000 if quick else 55000)
    data = None
    if "blas" in sections or "kernels" in sections:
        log("standalone BLAS ...")
        bn = sizes.get("blas_n", 1024)
        rep.blas = {np.dtype(dt).name: blas_mod.blas_gflops(dt, bn, bn, bn, repeats=reps)
                    for dt in (np.float32, np.float64)}
        steps = n // 100
        rep.floor = {"peak": blas_mod.epoch_floor(rep.blas["float32"]["gflops"], steps=steps),
                     "shapes": blas_mod.measured_floor(steps=steps, repeats=reps)}
    if "kernels" in sections:
        log("kernels ...")
        forms = ("numpy", "fast") if quick else kernels.FORMS
        dtypes = sizes.get("dtypes", (np.float32, np.float64))
        rep.kernels += kernels.dense_rows(dtypes, sizes.get("Ns", (100, 1024)), sizes.get("S", 800),
                                          sizes.get("S_prev", 784), reps, pause, forms)
        if sizes.get("conv", True):
            rep.kernels += kernels.conv_rows(dtypes[:1], 100, repeats=reps, pause=pause, forms=forms)
        kernels.add_blas_fractions(rep.kernels, rep.blas)
    if {"epoch", "cnn"} & set(sections):
        X, Y, data = workloads.mnist_like(data_dir, n)
    skipped = {"pytorch": why_torch} if why_torch else {}
    if "epoch" in sections:
        log("MNIST epoch ...")
        rep.epoch = workloads.mnist_epoch(X, Y, data, repeats=epoch_reps, pause=pause, torch=torch, jax=jax,
                                          skipped=skipped | ({"jax": why_jax} if why_jax else {}))
    if "tiny" in sections:
        log("tiny net ...")
        rep.tiny = workloads.tiny_step(rounds=repeats or (5 if quick else 15),
                                       round_s=sizes.get("tiny_round_s", workloads.TINY_ROUND_S),
                                       pause=pause, torch=torch, skipped=skipped)
    if "cnn" in sections:
        log("small CNN epoch ...")
        rep.cnn = workloads.cnn_epoch(X, Y, data, repeats=epoch_reps, pause=pause, torch=torch, skipped=skipped)
    if "startup" in sections:
        log("start-up (child processes) ...")
        rep.startup = startup.startup(repeats=2 if quick else 3, cold=cold and not quick)
    rep.targets = check_targets(rep)
    rep.config["loadavg_end"] = loadavg()
    rep.config["thread_env"] = thread_env()
    return rep
