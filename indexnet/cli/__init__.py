"""The ``indexnet`` command: ``train | eval | predict | demo | explain | check | bench``.

Each subcommand lives in its own module exposing ``add_parser(subparsers)`` and
``run(args) -> int``. Modules are imported only when their command runs, so
``indexnet --help`` does not import numba or compile anything.
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand -> (module, one-line help)
COMMANDS = {
    "train": ("indexnet.cli.train", "train a network (digits by default, or MNIST/IDX, CSV, x², sphere)"),
    "eval": ("indexnet.cli.evaluate", "evaluate a saved model (or a run folder) on a data set"),
    "predict": ("indexnet.cli.predict", "predict classes or outputs for a CSV, IDX or .npy file, as CSV"),
    "demo": ("indexnet.cli.demo", "seed 003's two figures: fit x² or points on a sphere"),
    "explain": ("indexnet.cli.explain", "print an equation beside its literal, loops and numpy kernels"),
    "check": ("indexnet.cli.check", "gradient-check every engine against finite differences"),
    "bench": ("indexnet.cli.bench", "time kernels against BLAS, training against PyTorch and JAX, and start-up"),
}


def plain_text(doc: str) -> str:
    """A docstring paragraph as --help text: one line, no reStructuredText or Sphinx markup
    (``code``, :mod:`x`, :func:`y`)."""
    import re

    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", doc)
    text = text.replace("``", "")
    return " ".join(text.split())


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; subcommand modules are imported only for ``only``."""
    parser = argparse.ArgumentParser(
        prog="indexnet",
        description="Neural networks as explicit index loops (Numba), checked against NumPy.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (modname, help_text) in COMMANDS.items():
        if name == only:
            module = importlib.import_module(modname)
            module.add_parser(sub, name, help_text)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.version:
        from indexnet._version import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 0
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except BrokenPipeError:
        # the reader went away (`indexnet explain ... | head`): stop quietly, as cat does
        import os

        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return 141
    except KeyboardInterrupt:
        # outside a training loop (which reports its own resume command): loading, compiling, writing
        print(f"\nindexnet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
