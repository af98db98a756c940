"""``indexnet explain``: an equation beside its literal, loops and numpy kernels.

``indexnet explain NAME`` accepts an equation id (``D2.5``, any case), a formula
(``weight_grad``), a kernel (``dense.weight_grad``), a form (``weight_grad_loops``) or an
equation's title (``relu``) and prints, for each equation the name refers to, its id,
title, place in ``derivations/``,
the seed equation it re-derives, its LaTeX source and a plain-text reading of it; then
the source of the kernel's literal, loops and numpy forms, each under its file and line.
``indexnet explain --list`` prints the whole equation map as a table.

Nothing is imported or compiled: the kernel modules are read as source (:mod:`ast`), so
explaining needs neither Numba nor NumPy.
Highlighting uses pygments when it is installed and stdout is a terminal.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from indexnet.explain.latex import latex_to_text

if TYPE_CHECKING:  # pragma: no cover
    from indexnet.explain.equations import Equation
    from indexnet.explain.explain_map import EquationMap

#: exit code of an unknown name (argparse's code for a usage error)
UNKNOWN = 2

def add_parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    """Register ``indexnet explain`` on the top-level subparsers."""
    from indexnet.cli import plain_text

    parser = sub.add_parser(name, help=help_text, description=plain_text(__doc__.split("\n\n")[1]))
    parser.add_argument(
        "name", nargs="?", metavar="NAME",
        help="equation id (D2.5), formula (weight_grad), kernel (dense.weight_grad) or form (weight_grad_loops)",
    )
    parser.add_argument("--list", action="store_true", help="print the whole equation map as a table")
    parser.add_argument("--no-color", dest="color", action="store_false", help="never highlight the sources")
    parser.add_argument(
        "--derivations-dir", type=Path, default=None, metavar="DIR",
        help="read the derivations from DIR instead of the shipped ones",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``indexnet explain``; 0 on success, 2 for an unknown name or no name."""
    from indexnet.explain.explain_map import load_map

    emap = load_map(args.derivations_dir)
    if args.list:
        print(list_table(emap))
        return 0
    if not args.name:
        print("indexnet explain: give a NAME (an equation id, formula, kernel or form) or --list", file=sys.stderr)
        return UNKNOWN
    colors = highlighters(args.color and sys.stdout.isatty())
    if not emap.resolve(args.name):
        titled = titled_equations(emap, args.name)
        if not titled:
            print(unknown_message(emap, args.name), file=sys.stderr)
            return UNKNOWN
        print("\n\n".join(explain(emap, eq.id, colors, args.derivations_dir) for eq in titled))
        return 0
    print(explain(emap, args.name, colors, args.derivations_dir))
    return 0


def titled_equations(emap: EquationMap, name: str) -> list[Equation]:
    """The equations whose title is ``name`` (case-insensitive, a final period ignored): ``relu``
    is equation A2, "ReLU"."""
    key = name.strip().rstrip(".").lower()
    return [e for e in emap.equations if e.title.strip().rstrip(".").lower() == key]


def search(emap: EquationMap, word: str) -> tuple[list[str], list[Equation]]:
    """Names containing ``word`` (shortest first) and equations whose title contains it (case-insensitive)."""
    import re

    key = word.strip().lower()
    starts = re.compile(rf"(^|[._\s-]){re.escape(key)}")

    def rank(text: str) -> int:  # 0: the text starts with the word, 1: a part of it does, 2: inside a part
        low = text.lower()
        return 0 if low.startswith(key) else 1 if starts.search(low) else 2

    names = sorted({n for n in emap.names() if key in n.lower()}, key=lambda n: (rank(n.split(".")[-1]), len(n), n))
    titles = sorted((e for e in emap.equations if key in e.title.lower()), key=lambda e: rank(e.title))
    return names, titles


def unknown_message(emap: EquationMap, name: str) -> str:
    """The error for a name that is no equation, formula, kernel or form: the names containing it
    (those starting with it first), the closest spellings, and the equations whose title contains it."""
    names, titles = search(emap, name)
    close = list(dict.fromkeys(names[:6] + emap.close_matches(name)))[:8]
    hint = f"closest matches: {', '.join(close)}" if close else "no close match"
    lines = [f"indexnet explain: unknown name {name!r}; {hint} (indexnet explain --list shows them all)"]
    if titles:
        lines.append("equations whose title contains it:")
        lines += [f"  {e.id:<6} {e.title}" for e in titles[:10]]
    return "\n".join(lines)


def highlighters(color: bool) -> tuple[Callable[[str], str], Callable[[str], str]]:
    """Functions highlighting (Python, LaTeX) text; identity without color or pygments."""
    plain = (lambda text: text, lambda text: text)
    if not color:
        return plain
    try:
        from pygments import highlight
        from pygments.formatters import TerminalFormatter
        from pygments.lexers import PythonLexer, TexLexer
    except ImportError:
        return plain
    fmt = TerminalFormatter()
    return (
        lambda text: highlight(text, PythonLexer(), fmt).rstrip("\n"),
        lambda text: highlight(text, TexLexer(), fmt).rstrip("\n"),
    )


def explain(
    emap: EquationMap,
    name: str,
    colors: tuple[Callable[[str], str], Callable[[str], str]] = (str, str),
    root: Path | None = None,
) -> str:
    """The text ``indexnet explain NAME`` prints (the name must resolve).

    Parameters
    ----------
    emap : EquationMap
        The map to read.
    name : str
        An equation id, formula, kernel or form name.
    colors : pair of callables
        Highlighters for Python and LaTeX text (see :func:`highlighters`).
    root : Path, optional
        The derivations folder ``emap`` was read from (for the equations' paths).
    """
    from indexnet.explain.explain_map import display_path, form_source

    python, tex = colors
    named = emap.equations_named(name)
    blocks = []
    for kernel in emap.resolve(name):
        eqs = [e for e in named if (e.kernel or "") == kernel] if named else emap.equations_of_kernel(kernel)
        blocks += [equation_block(e, tex, root) for e in eqs]
        if not kernel:
            blocks.append("This equation has no code of its own (Kernel: none).")
            continue
        missing = [] if named else emap.missing_equations(kernel)
        if missing:
            blocks.append(f"{kernel}: cited equation(s) not found in derivations/: {', '.join(missing)}")
        forms = emap.kernel_forms(kernel)
        one = [f for f in forms if name.strip().lower() in (f.name.lower(), f"{f.module}.{f.name}".lower())]
        forms = one or forms  # a form's name prints that form only
        if not forms:
            blocks.append(f"{kernel}: no kernel forms found in indexnet.kernels")
        for form in forms:
            head = f"── {form.name}  {display_path(form.file)}:{form.line} "
            blocks.append(head + "─" * max(3, 78 - len(head)) + "\n" + python(form_source(form).rstrip()))
    return "\n\n".join(blocks)


def equation_block(eq: Equation, tex: Callable[[str], str] = str, root: Path | None = None) -> str:
    """An equation's id, title, place, seed, kernel, LaTeX source and reading."""
    from indexnet.explain.explain_map import equation_path

    indent = "    "
    latex = "\n".join(indent + line for line in tex(eq.latex).splitlines()) or indent + "(no $$ block)"
    reading = "\n".join(indent + line for line in latex_to_text(eq.latex).splitlines())
    return (
        f"({eq.id}) {eq.title}\n"
        f"  at:         {equation_path(eq, root)}\n"
        f"  re-derives: {eq.seed or '—'}\n"
        f"  kernel:     {eq.kernel or 'none'}\n\n"
        f"  LaTeX:\n{latex}\n"
        f"  reads:\n{reading or indent + '—'}"
    )


def list_table(emap: EquationMap) -> str:
    """The whole map in reading order: equation, title, kernel and test, aligned."""
    from indexnet.explain.explain_map import covering_test, reading_key, repo_root

    rows = [("equation", "title", "kernel", "test")]
    for eq in sorted(emap.equations, key=lambda e: reading_key(e.file)):
        module = eq.kernel.split(".")[0] if eq.kernel else None
        rows.append((eq.id, eq.title, eq.kernel or "none", (module and covering_test(module)) or "—"))
    widths = [max(len(row[c]) for row in rows) for c in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[3] for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 4)
    if repo_root() is None:
        lines += ["", "The tests are not installed with the package: the test column names files of the indexnet "
                      "repository, as they were when this package was built."]
    orphans = [(k, m) for k in emap.kernels() if (m := emap.missing_equations(k))]
    if orphans:
        lines += ["", "kernels citing equations that no derivation defines yet:"]
        lines += [f"  {k}: {', '.join(m)}" for k, m in orphans]
    return "\n".join(lines)
