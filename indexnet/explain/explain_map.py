"""Look-ups on the equation map for ``indexnet explain`` and the derivations index.

:mod:`indexnet.explain.equations` reads the two sides of the map; this module answers the
questions a reader asks of it: which equations and which kernel forms does a name refer
to, where are they, which test covers a kernel module, and which names are close to a
misspelt one. Every function takes the derivations folder as an optional argument (the
shipped one by default), so tests can point it at a few fixture files. Nothing here
imports or compiles a kernel: the kernel modules are read as source with :mod:`ast`
(:func:`indexnet.explain.equations.kernel_forms`), so ``indexnet explain`` starts
without Numba.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from indexnet.explain.equations import EQUATION_REF, Equation, KernelForm, derivations_dir, parse_derivation


#: the derivations in reading order; any other file follows, alphabetically
READING_ORDER = ("dense", "activations", "losses", "conv2d", "pooling", "optim")


def reading_key(file: str) -> tuple[int, str]:
    """Sort key of a derivation file: reading order first, then alphabetical."""
    stem = Path(file).stem
    rank = READING_ORDER.index(stem) if stem in READING_ORDER else len(READING_ORDER)
    return rank, stem


@dataclass(frozen=True)
class EquationMap:
    """Both sides of the equation map, read once.

    Attributes
    ----------
    equations : list of Equation
        Every anchored equation of the derivations folder, file by file.
    forms : list of KernelForm
        Every kernel form, ordered by module, formula and form.
    """

    equations: list[Equation]
    forms: list[KernelForm]

    def kernel_forms(self, kernel: str) -> list[KernelForm]:
        """The forms of one kernel ``<module>.<formula>`` (literal, loops, numpy order)."""
        return [f for f in self.forms if f.kernel == kernel]

    def kernels(self) -> list[str]:
        """Every kernel ``<module>.<formula>`` that has at least one form, sorted."""
        return sorted({f.kernel for f in self.forms})

    def equations_of_kernel(self, kernel: str) -> list[Equation]:
        """The equations a kernel belongs to, in reading order.

        An equation belongs to a kernel when its caption names the kernel or when one of
        the kernel's forms cites it.
        """
        cited = {(f.equation_file, f.equation) for f in self.kernel_forms(kernel)}
        return [e for e in self.equations if e.kernel == kernel or (e.file, e.id) in cited]

    def missing_equations(self, kernel: str) -> list[str]:
        """Equations cited by a kernel's forms that no derivation defines, as ``file#ID``."""
        known = {(e.file, e.id) for e in self.equations}
        cited = {(f.equation_file, f.equation) for f in self.kernel_forms(kernel)}
        return [f"{file}#{eq}" for file, eq in sorted(cited - known)]

    def names(self) -> list[str]:
        """Every name ``indexnet explain`` accepts: ids, formulas, kernels and forms."""
        out = [e.id for e in self.equations]
        out += sorted({f.formula for f in self.forms}) + self.kernels()
        out += [f.name for f in self.forms]
        return list(dict.fromkeys(out))

    def resolve(self, name: str) -> list[str]:
        """The kernels (``<module>.<formula>``, or ``""`` for none) a name refers to.

        Parameters
        ----------
        name : str
            An equation id (case-insensitive, optionally as ``dense.md#D2.5``), a
            formula (``weight_grad``), a kernel (``dense.weight_grad``) or a form
            (``weight_grad_loops``, or ``dense.weight_grad_loops`` where two modules
            share the name).

        Returns
        -------
        list of str
            The kernels to explain, in map order; empty when the name is unknown. An
            equation with ``Kernel: none`` resolves to ``""``.
        """
        by_id = self.equations_named(name)
        if by_id:
            return list(dict.fromkeys(e.kernel or "" for e in by_id))
        key = name.strip().lower()
        return list(
            dict.fromkeys(
                f.kernel
                for f in self.forms
                if key in (f.formula.lower(), f.kernel.lower(), f.name.lower(), f"{f.module}.{f.name}".lower())
            )
        )

    def equations_named(self, name: str) -> list[Equation]:
        """The equations whose id is ``name`` (case-insensitive); empty for other names."""
        ref = EQUATION_REF.search("derivations/" + name.strip())
        key = (ref.group(2) if ref else name.strip()).lower()
        return [e for e in self.equations if e.id.lower() == key]

    def close_matches(self, name: str, n: int = 5) -> list[str]:
        """The accepted names closest to a misspelt one (case-insensitive)."""
        names = self.names()
        lowered = {}
        for candidate in names:
            lowered.setdefault(candidate.lower(), candidate)
        hits = difflib.get_close_matches(name.strip().lower(), list(lowered), n=n, cutoff=0.6)
        return [lowered[h] for h in hits]


def load_equations(root: Path | None = None) -> list[Equation]:
    """Every anchored equation of a derivations folder, file by file.

    Parameters
    ----------
    root : Path, optional
        The folder to read; the shipped ``derivations/`` by default (then this is
        :func:`indexnet.explain.equations.equations`).
    """
    if root is None:
        from indexnet.explain.equations import equations

        return equations()
    return [
        eq
        for path in sorted(Path(root).glob("*.md"))
        if path.name != "README.md"
        for eq in parse_derivation(path)
    ]


def load_map(root: Path | None = None) -> EquationMap:
    """Read both sides of the map (derivations from ``root``, kernels from the package)."""
    from indexnet.explain.equations import kernel_forms

    return EquationMap(equations=load_equations(root), forms=kernel_forms())


def form_source(form: KernelForm) -> str:
    """The Python source of one kernel form, decorators included, read from its module's
    file (:func:`indexnet.explain.equations.form_source`: nothing is imported or compiled)."""
    from indexnet.explain.equations import form_source as read

    return read(form)


def repo_root() -> Path | None:
    """The source checkout holding the package, or None for an installed package."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else None


#: the covering test of each kernel module, as found in the repository when the package was
#: last indexed (``python -m indexnet.explain.derivations_index --write``): an installed
#: package has no tests/ folder to look in
COVERING_TESTS_FILE = Path(__file__).resolve().parent / "covering_tests.json"


def find_covering_test(module: str, root: Path) -> str | None:
    """``tests/test_<module>.py`` (or ``tests/test_<module>_kernels.py``) when the checkout
    ``root`` has it, else None."""
    found = (f"tests/test_{module}{suffix}.py" for suffix in ("", "_kernels"))
    return next((rel for rel in found if (root / rel).is_file()), None)


def covering_tests(root: Path) -> dict[str, str]:
    """Kernel module -> its covering test (a path in the repository) for every kernel module
    of the checkout ``root`` that has one: what :data:`COVERING_TESTS_FILE` ships."""
    from indexnet.explain.equations import kernel_modules

    return {m: t for m in kernel_modules() if (t := find_covering_test(m, root))}


def covering_test(module: str) -> str | None:
    """The test file covering a kernel module, as a repository path (``tests/test_dense_kernels.py``):
    looked up in the checkout when the package runs from one, else (an installed package,
    which holds no tests) read from :data:`COVERING_TESTS_FILE`; None when there is none."""
    root = repo_root()
    if root is not None:
        return find_covering_test(module, root)
    import json

    try:
        return json.loads(COVERING_TESTS_FILE.read_text(encoding="utf-8")).get(module)
    except (OSError, ValueError):
        return None


def display_path(path: str | Path) -> str:
    """A path as a reader types it: relative to the checkout or the working folder, else (an
    installed package) as it stands in the repository (``derivations/dense.md``,
    ``indexnet/kernels/dense.py``), never an absolute site-packages path."""
    resolved = Path(path).resolve()
    root = repo_root()
    if root is not None and resolved.is_relative_to(root.resolve()):
        return resolved.relative_to(root.resolve()).as_posix()
    # an installed package's own files, before the working folder: a venv inside the working
    # folder would otherwise print .venv/lib/python3.x/site-packages/indexnet/...
    package = Path(__file__).resolve().parents[1]
    derivations = (package / "derivations").resolve()
    if resolved.is_relative_to(derivations):
        return "derivations/" + resolved.relative_to(derivations).as_posix()
    if resolved.is_relative_to(package):
        return resolved.relative_to(package.parent).as_posix()
    if resolved.is_relative_to(Path.cwd().resolve()):
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    return str(resolved)


def equation_path(eq: Equation, root: Path | None = None) -> str:
    """Where an equation stands, as ``derivations/dense.md:42``."""
    return f"{display_path(Path(root or derivations_dir()) / eq.file)}:{eq.line}"
