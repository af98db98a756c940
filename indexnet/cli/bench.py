"""``indexnet bench``: loops vs numpy kernels, the trainer's epoch and step, start-up.

See :mod:`indexnet.bench.bench` for what is measured and how. ``--warm`` only compiles every
kernel into the cache (as ``python -m indexnet.bench.warm``) and exits.
"""
from __future__ import annotations

import argparse

SECTIONS = ("kernels", "epoch", "tiny", "startup")


def add_parser(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--quick", action="store_true", help="fewer repeats, 6000-sample epoch, no exact build, no cold compile")
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), metavar="SECTION",
                   help=f"run only these sections ({', '.join(SECTIONS)})")
    p.add_argument("--threads", type=int, default=2, help="threads for numba, OpenBLAS and PyTorch (default 2)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per row (default 7, quick 3; epochs 3, quick 2)")
    p.add_argument("--data-dir", default=None, help="directory with the MNIST IDX files for the epoch (else synthetic data)")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when installed")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the full report as JSON ('-' for stdout)")
    p.add_argument("--cold", choices=("trainer", "all", "none"), default="trainer",
                   help="cold-compile measurement: the trainer's kernels (default), the whole set (minutes), or none")
    p.add_argument("--warm", action="store_true", help="compile every kernel into the cache and exit")
    return p


def run(args) -> int:
    if args.warm:
        from indexnet.bench.warm import main as warm_main

        return warm_main([])
    from indexnet.bench.bench import format_report, run as run_bench

    rep = run_bench(quick=args.quick, sections=tuple(args.only), threads=args.threads, data_dir=args.data_dir,
                    repeats=args.repeats, torch_ok=not args.no_torch,
                    cold=None if args.cold == "none" else args.cold)
    if args.json == "-":
        print(rep.to_json())
        return 0
    print(format_report(rep))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(rep.to_json())
    return 0
