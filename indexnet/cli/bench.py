"""``indexnet bench``: BLAS and kernel throughput, MNIST epoch, tiny step, small CNN, start-up.

See :mod:`indexnet.bench.run` for the sections. ``--warm`` only compiles every kernel into
the cache (as ``python -m indexnet.bench.warm``) and exits.
"""
from __future__ import annotations

import argparse
import os

#: the sections (kept here so ``--help`` needs no import of numpy or numba)
SECTIONS = ("blas", "kernels", "epoch", "tiny", "cnn", "startup")

DESCRIPTION = (
    "Time indexnet against standalone BLAS, PyTorch and JAX (each optional: skipped with the reason when "
    "not installed). Sections: blas (BLAS GFLOP/s and the dense floor of the MNIST epoch), kernels "
    "(each kernel form's GFLOP/s and fraction of BLAS), epoch (MNIST 784-800-10, batch 100, 550 steps), "
    "tiny (1-16-16-1 tanh step), cnn (preset cnn on MNIST images), startup (indexnet train with a cold "
    "and a warm Numba cache, indexnet --help). Medians and ranges of repeats; the load average is "
    "recorded. Without --data-dir the epochs use synthetic MNIST-shaped data and say so."
)


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}") from None
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return v


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return v


def add_parser(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=DESCRIPTION)
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), metavar="SECTION",
                   help=f"run only these sections: {', '.join(SECTIONS)} (default all)")
    p.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files (else synthetic data)")
    p.add_argument("--quick", action="store_true",
                   help="fewer repeats, a 6000-sample epoch, no exact loops kernels, no cold compile")
    p.add_argument("--repeats", type=_positive, default=None,
                   help="timed repeats per row (default 7, quick 3; epochs 3, quick 2; the tiny step's paired rounds 15, quick 5)")
    p.add_argument("--threads", type=_positive, default=2, help="threads for Numba, OpenBLAS and PyTorch (default 2)")
    p.add_argument("--pause", type=_seconds, default=2.0,
                   help="seconds slept before each contender so the previous one's spinning threads park (default 2)")
    p.add_argument("--passive-threads", action="store_true",
                   help="set OMP_WAIT_POLICY=PASSIVE, KMP_BLOCKTIME=0, GOMP_SPINCOUNT=0: idle OpenMP threads "
                        "(Numba's omp layer, PyTorch) sleep at once instead of spinning")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when installed")
    p.add_argument("--no-jax", action="store_true", help="leave JAX out even when installed")
    p.add_argument("--no-cold", action="store_true", help="startup: skip the cold-cache indexnet train")
    p.add_argument("--json", default=None, metavar="PATH", help="also write every figure as JSON ('-': stdout only)")
    p.add_argument("--warm", action="store_true", help="compile every kernel into the cache and exit")
    return p


def run(args) -> int:
    if args.warm:
        from indexnet.bench.warm import main as warm_main

        return warm_main([])
    if args.passive_threads:
        from indexnet.bench.timing import PASSIVE_ENV

        os.environ.update(PASSIVE_ENV)  # before Numba's OpenMP layer or PyTorch load
    from indexnet.bench.report import format_report
    from indexnet.bench.run import run as run_bench

    quiet = args.json == "-"
    rep = run_bench(sections=tuple(dict.fromkeys(args.only)), quick=args.quick, threads=args.threads,
                    data_dir=args.data_dir, repeats=args.repeats, pause=args.pause, use_torch=not args.no_torch,
                    use_jax=not args.no_jax, cold=not args.no_cold,
                    log=(lambda *_: None) if quiet else (lambda m: print(m, flush=True)))
    if quiet:
        print(rep.to_json())
        return 0
    print(format_report(rep))
    if args.json:
        from indexnet.io import write_bytes_atomic

        write_bytes_atomic(args.json, rep.to_json().encode("utf-8"))
    return 0
