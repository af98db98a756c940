"""The equation map: which kernel implements which numbered equation.

One source of truth, read from the two places a reader looks:

* each kernel form's docstring names its equation as ``derivations/<file>.md#<ID>``;
* each numbered equation in ``derivations/*.md`` sits under an anchor
  ``<a id="ID"></a>`` whose caption line names its kernel as
  ``Kernel: `<module>.<formula>` `` (or ``Kernel: none`` for a definition or an
  intermediate step that is no kernel), and, for code outside the kernel modules that
  computes it, ``Code: `indexnet.<module>.<name>` `` (a schedule, a gradient check).

"Kernel: none" is checked, not trusted: :func:`code_references` finds every equation
the package's source cites as ``derivations/<file>.md#ID``, and an equation marked none
without a ``Code:`` is an error when something cites it (``tests/test_equation_map.py``).

:func:`kernel_forms` and :func:`equations` read both sides; ``indexnet explain``, the
derivations index and ``tests/test_equation_map.py`` all use them, so the two sides
cannot drift apart unnoticed.
"""
from __future__ import annotations

import ast
import functools
import importlib
import re
from dataclasses import dataclass
from pathlib import Path

FORMS = ("literal", "loops", "numpy", "fast")
#: the reading and oracle forms every formula has (``fast`` is the trainer's fourth form,
#: present for the formulas the trainer runs)
EXACT_FORMS = ("literal", "loops", "numpy")
EQUATION_REF = re.compile(r"derivations/([\w-]+\.md)#([A-Z]+[\w.]*\w)")
ANCHOR = re.compile(r'^<a id="([A-Z]+[\w.]*\w)"></a>\s*$')
CAPTION = re.compile(r"^\*\*\((?P<id>[A-Z]+[\w.]*\w)\)\s*(?P<title>.*?)\*\*(?P<rest>.*)$")
KERNEL = re.compile(r"Kernel:\s*(?:`(?P<kernel>[\w.]+)`|(?P<none>none))")
CODE = re.compile(r"Code:\s*((?:`[\w.]+`(?:\s*,\s*|\s+and\s+)?)+)")
SEED = re.compile(r"(seeds? \d{3}[^.;]*?(?:eqs?\.|section|appendix|algorithm|§)\s*[\w.\-–, ]*?\w)(?=\.?\s+(?-i:[A-Z])|\.?\s*$|\s*[;()])", re.IGNORECASE)


@dataclass(frozen=True)
class KernelForm:
    """One form (literal, loops, numpy or fast) of one formula."""

    module: str  # e.g. "dense"
    formula: str  # e.g. "weight_grad"
    form: str  # "literal" | "loops" | "numpy" | "fast"
    file: str  # absolute path of the source file
    line: int  # first line of the function
    equation_file: str  # e.g. "dense.md"
    equation: str  # e.g. "D2.5"

    @property
    def kernel(self) -> str:
        return f"{self.module}.{self.formula}"

    @property
    def name(self) -> str:
        return f"{self.formula}_{self.form}"


@dataclass(frozen=True)
class Equation:
    """One numbered equation of a derivation."""

    id: str
    file: str  # file name inside derivations/, e.g. "dense.md"
    line: int
    title: str
    latex: str
    kernel: str | None  # "<module>.<formula>", or None for a definition
    seed: str | None  # the seed equation it re-derives, as written in the caption
    code: tuple[str, ...] = ()  # code outside the kernel modules computing it, "indexnet.x.y"


def derivations_dir() -> Path:
    """The folder holding the derivations (shipped inside the package)."""
    return Path(__file__).resolve().parents[1] / "derivations"


def kernels_dir() -> Path:
    """The folder of the kernel modules (``indexnet/kernels``)."""
    return Path(__file__).resolve().parents[1] / "kernels"


def kernel_modules() -> list[str]:
    """Names of the modules in :mod:`indexnet.kernels` (read from the folder, nothing imported)."""
    return sorted(p.stem for p in kernels_dir().glob("*.py") if not p.name.startswith("_"))


@functools.lru_cache(maxsize=None)
def _module_functions(path: str, mtime: float) -> dict[str, tuple[int, int, str | None]]:
    """The top-level functions of a source file: name -> (first line, counting decorators;
    last line; docstring), read with :mod:`ast` (``mtime`` keys the cache)."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=path)
    return {
        node.name: (min([node.lineno] + [d.lineno for d in node.decorator_list]), node.end_lineno,
                    ast.get_docstring(node))
        for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }


def module_functions(path: str | Path) -> dict[str, tuple[int, int, str | None]]:
    """See :func:`_module_functions`."""
    path = Path(path)
    return _module_functions(str(path), path.stat().st_mtime)


def kernel_forms() -> list[KernelForm]:
    """Every public ``<formula>_<form>`` function defined in a kernel module.

    The modules are read as source with :mod:`ast`, not imported: listing and explaining
    the kernels needs neither Numba nor NumPy (``tests/test_explain.py`` checks that the
    result equals what the imported modules hold).

    Raises
    ------
    ValueError
        A kernel form whose docstring names no equation, or more than one.
    """
    found = []
    for modname in kernel_modules():
        path = kernels_dir() / f"{modname}.py"
        for name, (line, _, doc) in module_functions(path).items():
            if name.startswith("_") or "_" not in name:
                continue
            formula, _, form = name.rpartition("_")
            if form not in FORMS:
                continue
            refs = set(EQUATION_REF.findall(doc or ""))
            if len(refs) != 1:
                raise ValueError(
                    f"kernel {modname}.{name}: expected its docstring to name exactly one "
                    f"equation as derivations/<file>.md#<ID>, found {sorted(refs) or 'none'}"
                )
            (eq_file, eq_id), = refs
            found.append(
                KernelForm(
                    module=modname,
                    formula=formula,
                    form=form,
                    file=str(path),
                    line=line,
                    equation_file=eq_file,
                    equation=eq_id,
                )
            )
    return sorted(found, key=lambda k: (k.module, k.formula, FORMS.index(k.form)))


def form_source(form: KernelForm) -> str:
    """The Python source of one kernel form, decorators included, read from its file
    (nothing imported, nothing compiled)."""
    first, last, _ = module_functions(form.file)[form.name]
    lines = Path(form.file).read_text(encoding="utf-8").splitlines(keepends=True)
    return "".join(lines[first - 1:last])


def parse_derivation(path: Path) -> list[Equation]:
    """The anchored equations of one derivation file, in reading order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if ANCHOR.match(line)]
    out = []
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(lines)
        eq_id = ANCHOR.match(lines[start]).group(1)
        block = lines[start + 1 : end]
        caption = next((line for line in block if line.strip()), "")
        m = CAPTION.match(caption)
        if not m or m.group("id") != eq_id:
            raise ValueError(
                f"{path.name}:{start + 2}: expected a caption '**({eq_id}) Title.** ...' "
                f"under the anchor, got {caption[:60]!r}"
            )
        km = KERNEL.search(caption)
        if not km:
            raise ValueError(
                f"{path.name}:{start + 2}: caption of {eq_id} must say 'Kernel: `module.formula`' "
                f"or 'Kernel: none'"
            )
        latex = []
        inside = False
        for line in block:
            if line.strip().startswith("$$"):
                if inside:
                    break
                inside = True
                rest = line.strip()[2:]
                if rest.endswith("$$") and rest != "":
                    latex.append(rest[:-2])
                    break
                continue
            if inside:
                latex.append(line)
        seed = SEED.search(m.group("rest"))
        code = CODE.search(m.group("rest"))
        out.append(
            Equation(
                id=eq_id,
                file=path.name,
                line=start + 1,
                title=m.group("title").strip().rstrip("."),
                latex="\n".join(latex).strip(),
                kernel=km.group("kernel"),
                seed=seed.group(1) if seed else None,
                code=tuple(re.findall(r"`([\w.]+)`", code.group(1))) if code else (),
            )
        )
    return out


def equations() -> list[Equation]:
    """Every anchored equation of every derivation, file by file."""
    out = []
    for path in sorted(derivations_dir().glob("*.md")):
        if path.name == "README.md":
            continue
        out.extend(parse_derivation(path))
    return out


#: an equation cited from source: ``derivations/<file>.md#ID`` or ``eq. ID`` / ``eqs. ID-ID``
_SOURCE_REF = re.compile(
    r"derivations/(?P<file>[\w-]+\.md)#(?P<id>[A-Z]+[\w.]*\w)"
    r"|\beqs?\.\s*(?P<eq>[A-Z]+\d[\w.]*\w|[A-Z]+\d)(?:\s*[-–]\s*(?P<to>[A-Z]+\d[\w.]*\w|[A-Z]+\d))?"
)


def _expand_ids(first: str, last: str | None, known: set[str]) -> list[str]:
    """O13-O15 → O13, O14, O15 (ids of one letter prefix); one id alone otherwise."""
    if not last:
        return [first]
    a, b = re.fullmatch(r"([A-Z]+)(\d+)", first), re.fullmatch(r"([A-Z]+)(\d+)", last)
    if a and b and a.group(1) == b.group(1):
        ids = [f"{a.group(1)}{k}" for k in range(int(a.group(2)), int(b.group(2)) + 1)]
        return [i for i in ids if i in known] or [first, last]
    return [first, last]


def code_references(root: Path | None = None, informal: bool = False) -> dict[str, set[str]]:
    """Every equation id cited from the package's Python source, with the files citing it.

    Reads ``indexnet/**/*.py`` (not the tests) for the formal citation
    ``derivations/<file>.md#ID`` (the form a kernel's docstring uses to name what it
    computes); with ``informal=True`` also for ``eq. ID`` / ``eqs. ID-ID`` mentions (seed
    places such as "seed 000 eq. 2" have no letter and are not equation ids).
    """
    package = Path(__file__).resolve().parents[1] if root is None else root
    known = {e.id for e in equations()}
    refs: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for m in _SOURCE_REF.finditer(text):
            if not m.group("id") and not informal:
                continue
            ids = [m.group("id")] if m.group("id") else _expand_ids(m.group("eq"), m.group("to"), known)
            for eq_id in ids:
                if eq_id in known:
                    refs.setdefault(eq_id, set()).add(str(path.relative_to(package.parent)))
    return refs


def resolve_code(path: str):
    """The object a ``Code:`` entry names, e.g. ``indexnet.nn.optim.StepLR``; ImportError or
    AttributeError when it does not exist."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(f"cannot import {path}")
