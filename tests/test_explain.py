"""``indexnet explain`` and the derivations index (issue 7).

The real derivations are being written while this suite grows, so most tests run twice:
on a few fixture files written under ``tmp_path`` (which cite the real dense kernels)
and on whatever ``derivations/*.md`` exist.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from indexnet.cli import main
from indexnet.cli.explain import latex_to_text
from indexnet.explain.derivations_index import index_path, render_index
from indexnet.explain.equations import equations, kernel_forms
from indexnet.explain.explain_map import form_source, load_map, reading_key

FIXTURE = {
    "dense.md": """\
# Dense layers (fixture)

<a id="D2.1"></a>
**(D2.1) Chain rule.** Re-derives seed 004 eq. 2.1. Kernel: none

$$
\\frac{\\partial J}{\\partial W_{ij}}
= \\sum_{k}\\sum_{n} \\frac{\\partial J}{\\partial A_{kn}} \\frac{\\partial A_{kn}}{\\partial W_{ij}}
$$

<a id="D2.4"></a>
**(D2.4) Weight gradient, unreduced.** Re-derives seed 004 eq. 2.4. Kernel: `dense.weight_grad`

$$
\\frac{\\partial J}{\\partial W_{ij}} = \\sum_{k=1}^{S_l}\\sum_{n=1}^{N} \\Delta_{kn}\\,\\sigma'(Z_{kn})\\,\\delta_{ik} A^{(l-1)}_{jn}
$$

<a id="D2.5"></a>
**(D2.5) Weight gradient.** Re-derives seed 004 eq. 2.5. Kernel: `dense.weight_grad`

$$
\\frac{\\partial J}{\\partial W_{ij}} = \\sum_{n=1}^{N} H_{in} A_{jn}
$$
""",
    "zeta.md": """\
# A topic outside the reading order (fixture)

<a id="Z1"></a>
**(Z1) A definition.** Kernel: none

$$
\\zeta = \\frac{1}{2} \\lVert x \\rVert^{2}
$$
""",
    "activations.md": """\
# Activations (fixture)

<a id="A0"></a>
**(A0) Elementwise activation.** Re-derives seed 001 appendix F. Kernel: `activations.activation`

$$
A^{(l)}_{in} = \\sigma_l\\big(Z^{(l)}_{in}\\big)
$$
""",
}


@pytest.fixture
def fixture_dir(tmp_path: Path) -> Path:
    """A derivations folder of three small files citing real kernels."""
    for name, text in FIXTURE.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def explain(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``indexnet explain ARGV`` in-process; (exit code, stdout, stderr)."""
    code = main(["explain", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def dir_args(root: Path | None) -> list[str]:
    """The ``--derivations-dir`` option for a fixture folder (none for the real one)."""
    return [] if root is None else ["--derivations-dir", str(root)]


@pytest.fixture(params=["fixture", "real"])
def root(request: pytest.FixtureRequest, fixture_dir: Path) -> Path | None:
    """The fixture folder, then the real derivations (None)."""
    return fixture_dir if request.param == "fixture" else None


@pytest.fixture
def read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the command read each derivations folder's map once per test.

    Reading the kernel side (``inspect.getsourcelines`` of every form) takes a good
    part of a second; the tests that run the command once per name reuse it.
    """
    import indexnet.explain.explain_map as explain_map

    read = explain_map.load_map
    maps: dict[Path | None, explain_map.EquationMap] = {}

    def load_map(root: Path | None = None) -> explain_map.EquationMap:
        if root not in maps:
            maps[root] = read(root)
        return maps[root]

    monkeypatch.setattr(explain_map, "load_map", load_map)


def test_every_equation_can_be_explained(capsys, root, read_once):
    """Each equation of the map, looked up by its id, prints its title, place, LaTeX and
    the source of each existing form of its kernel (or says it has no code)."""
    emap = load_map(root)
    for eq in emap.equations:
        code, out, _ = explain(capsys, *dir_args(root), eq.id)
        assert code == 0, eq.id
        assert f"({eq.id}) {eq.title}" in out
        assert f"{eq.file}:{eq.line}" in out
        assert eq.latex.splitlines()[0] in out if eq.latex else True
        if eq.kernel is None:
            assert "no code of its own" in out
        for form in emap.kernel_forms(eq.kernel or ""):
            assert form_source(form).rstrip() in out, (eq.id, form.name)


def test_equation_ids_are_case_insensitive(capsys, fixture_dir):
    """``d2.5`` and ``dense.md#D2.5`` find equation D2.5."""
    expected = explain(capsys, *dir_args(fixture_dir), "D2.5")[1]
    assert "(D2.5) Weight gradient" in expected and "re-derives: seed 004 eq. 2.5\n" in expected
    assert explain(capsys, *dir_args(fixture_dir), "d2.5")[1] == expected
    assert explain(capsys, *dir_args(fixture_dir), "dense.md#D2.5")[1] == expected


def test_every_kernel_form_can_be_explained_by_its_name(capsys, fixture_dir, read_once):
    """Every kernel form, by its name, prints its equations and its own source under its file:line, and
    not the kernel's other forms (``explain weight_grad_loops`` printed all three); the formula and the
    kernel name print every form (a form name two modules share prints that form of both kernels, and
    ``module.form`` picks one)."""
    emap = load_map(fixture_dir)
    for form in emap.forms:
        code, out, _ = explain(capsys, *dir_args(fixture_dir), form.name)
        assert code == 0, form.name
        assert form_source(form).rstrip() in out
        assert f"{Path(form.file).name}:{form.line}" in out
        others = [f for f in emap.kernel_forms(form.kernel) if f.name != form.name]
        assert not any(f"── {f.name} " in out for f in others), form.name
        by_kernel = explain(capsys, *dir_args(fixture_dir), form.kernel)[1]
        qualified = explain(capsys, *dir_args(fixture_dir), f"{form.module}.{form.name}")[1]
        assert form_source(form).rstrip() in qualified and qualified.split("── ")[0] == by_kernel.split("── ")[0]
        assert all(f"── {f.name} " in by_kernel for f in emap.kernel_forms(form.kernel))
        if len(emap.resolve(form.name)) == 1:
            assert qualified == out
            if len(emap.resolve(form.formula)) == 1:  # bias_grad_fast is dense's only; bias_grad is shared
                assert by_kernel == explain(capsys, *dir_args(fixture_dir), form.formula)[1]


def test_unknown_names_search_names_and_titles(capsys):
    """``explain relu`` explains the equation titled ReLU (exit 0); ``explain leaky`` lists the equations
    whose title contains it; ``explain adam`` suggests adam_step before hadamard."""
    emap = load_map()
    relu = [e for e in emap.equations if e.title.lower() == "relu"]
    code, out, _ = explain(capsys, "relu")
    assert relu and code == 0 and all(f"({e.id}) {e.title}\n" in out for e in relu)
    code, _, err = explain(capsys, "leaky")
    assert code == 2 and re.search(r"^  A\d+\s+Leaky ReLU$", err, re.M)
    code, _, err = explain(capsys, "adam")
    close = err.split("closest matches:")[1].split("(")[0]
    assert code == 2 and close.index("adam_step") < close.index("hadamard")


def test_explain_into_a_closed_pipe_ends_quietly():
    """`indexnet explain weight_grad | head -1` ends without a BrokenPipeError traceback: here the reader
    closes the pipe before anything is written."""
    import os

    r, w = os.pipe()
    os.close(r)
    try:
        out = subprocess.run([sys.executable, "-m", "indexnet", "explain", "weight_grad"], stdout=w,
                             stderr=subprocess.PIPE, text=True)
    finally:
        os.close(w)
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr, out.stderr


def test_paths_print_repository_relative_when_installed(monkeypatch, tmp_path):
    """Outside a checkout (a non-editable install) a derivation prints as derivations/dense.md and a kernel
    as indexnet/kernels/dense.py, not as an absolute site-packages path, nor as a path through a venv that
    lies in the working folder; other files print relative to the working folder."""
    import indexnet.explain.explain_map as em

    monkeypatch.setattr(em, "repo_root", lambda: None)
    monkeypatch.chdir(tmp_path)
    package = Path(em.__file__).resolve().parents[1]
    assert em.display_path(package / "derivations" / "dense.md") == "derivations/dense.md"
    assert em.display_path(package / "kernels" / "dense.py") == "indexnet/kernels/dense.py"
    monkeypatch.chdir(package.parents[1])  # the package below the working folder, as in a .venv there
    assert em.display_path(package / "derivations" / "dense.md") == "derivations/dense.md"
    assert em.display_path(package / "kernels" / "dense.py") == "indexnet/kernels/dense.py"
    assert em.display_path(package.parents[1] / "notes" / "mine.md") == "notes/mine.md"


def test_a_shared_kernel_prints_every_equation_it_cites(capsys, fixture_dir):
    """``explain weight_grad`` prints D2.4 and D2.5 (both name dense.weight_grad), then
    the three forms once each; ``explain D2.5`` prints only D2.5."""
    out = explain(capsys, *dir_args(fixture_dir), "weight_grad")[1]
    assert out.index("(D2.4)") < out.index("(D2.5)") < out.index("def weight_grad_literal")
    assert out.index("def weight_grad_literal") < out.index("def weight_grad_loops") < out.index("def weight_grad_numpy")
    assert out.count("def weight_grad_loops") == 1
    assert "(D2.4)" not in explain(capsys, *dir_args(fixture_dir), "D2.5")[1]


def test_kernel_none_prints_only_the_equation(capsys, fixture_dir):
    """An equation marked ``Kernel: none`` prints its reading and says it has no code."""
    code, out, _ = explain(capsys, *dir_args(fixture_dir), "D2.1")
    assert code == 0
    assert "    ∂J/∂W_ij\n    = Σ_k Σ_n ∂J/∂A_kn ∂A_kn/∂W_ij\n" in out
    assert "no code of its own" in out and "def " not in out


def test_unknown_names_exit_2_with_closest_matches(capsys, fixture_dir):
    """A misspelt name exits with 2 and suggests the closest ids, formulas and forms."""
    for name, suggestion in [("weight_grd", "weight_grad"), ("D2.6", "D2.5"), ("weight_grad_lops", "weight_grad_loops")]:
        code, out, err = explain(capsys, *dir_args(fixture_dir), name)
        assert code == 2 and out == ""
        assert f"unknown name {name!r}" in err and suggestion in err.split("closest matches:")[1]
    code, _, err = explain(capsys, *dir_args(fixture_dir), "qqqqqqqq")
    assert code == 2 and "no close match" in err
    assert explain(capsys, *dir_args(fixture_dir))[0] == 2


def test_list_lists_every_equation(capsys, root, read_once):
    """``--list`` has one row per equation with its title, kernel and test file
    (tests/test_<module>.py, else tests/test_<module>_kernels.py, else —)."""
    emap = load_map(root)
    code, out, _ = explain(capsys, *dir_args(root), "--list")
    assert code == 0
    rows = out.splitlines()
    assert rows[0].split() == ["equation", "title", "kernel", "test"]
    for eq in emap.equations:
        row = next(r for r in rows if r.split()[:1] == [eq.id])
        assert eq.title in row and (eq.kernel or "none") in row
        assert row.endswith("—") or re.search(r"tests/test_\w+\.py$", row)
        if eq.kernel:
            module = eq.kernel.split(".")[0]
            tests = [Path(__file__).parent / f"test_{module}{suffix}.py" for suffix in ("", "_kernels")]
            test = next((t for t in tests if t.is_file()), None)
            assert row.endswith(f"tests/{test.name}" if test else "—")


def test_list_names_the_tests_in_an_installed_package(capsys, monkeypatch):
    """After a non-editable install (no checkout, no tests/) --list still names each kernel's test, as a
    repository path from the covering-tests file the package ships, and says that these files are in the
    repository, not installed."""
    import indexnet.explain.explain_map as em

    in_checkout = explain(capsys, "--list")[1]
    monkeypatch.setattr(em, "repo_root", lambda: None)
    code, installed, _ = explain(capsys, "--list")
    table = in_checkout.split("\n\n")[0].rstrip("\n")
    assert code == 0 and re.search(r"\sdense\.weight_grad\s+tests/test_dense_kernels\.py$", table, re.M)
    assert installed.split("\n\n")[0].rstrip("\n") == table
    assert "the test column names files of the indexnet repository" in installed


def test_shipped_covering_tests_file_is_current():
    """indexnet/explain/covering_tests.json (shipped for installed packages) names, for every kernel module,
    the test file the checkout holds (regenerate with python -m indexnet.explain.derivations_index --write)."""
    import json

    import indexnet.explain.explain_map as em
    from indexnet.explain.derivations_index import render_covering_tests

    shipped = json.loads(em.COVERING_TESTS_FILE.read_text(encoding="utf-8"))
    assert em.COVERING_TESTS_FILE.read_text(encoding="utf-8") == render_covering_tests()
    for module, test in shipped.items():
        assert (em.repo_root() / test).is_file() and test.startswith(f"tests/test_{module}")


def test_no_color_and_plain_output_when_not_a_terminal(capsys, fixture_dir):
    """Output captured (not a terminal) has no escape codes; pygments, when installed,
    highlights only when asked to."""
    out = explain(capsys, *dir_args(fixture_dir), "D2.5")[1]
    assert "\x1b[" not in out
    assert "\x1b[" not in explain(capsys, *dir_args(fixture_dir), "--no-color", "D2.5")[1]
    pytest.importorskip("pygments")
    from indexnet.cli.explain import highlighters

    python, tex = highlighters(True)
    assert "\x1b[" in python("def f(x):\n    return x\n") and "\x1b[" in tex(r"\frac{a}{b}")


@pytest.mark.parametrize(
    "latex, reading",
    [
        (r"\frac{\partial J}{\partial W_{ij}} = \sum_{n=1}^{N} H_{in} A_{jn}", "∂J/∂W_ij = Σ_{n=1..N} H_in A_jn"),
        (
            r"H_{in} = \frac{\partial J}{\partial Z_{in}} = \sum_{k=1}^{S_l} \Delta_{kn}\,\sigma_l'(Z_{kn})\,\delta_{ki}"
            r" = \Delta_{in}\,\sigma_l'(Z_{in}), \quad H = \Delta \odot \sigma_l'(Z)",
            "H_in = ∂J/∂Z_in = Σ_{k=1..S_l} Δ_kn σ_l'(Z_kn) δ_ki = Δ_in σ_l'(Z_in), H = Δ ⊙ σ_l'(Z)",
        ),
        (
            r"\Delta^{(l-1)}_{k'n'} = \frac{\partial J}{\partial A^{(l-1)}_{k'n'}} = \big(W^{(l)}\big)^{t} H^{(l)}",
            "Δ^(l-1)_k'n' = ∂J/∂A^(l-1)_k'n' = (W^(l))^t H^(l)",
        ),
        (
            r"\theta_i &\leftarrow \theta_i - \eta\, \hat m_i \big/ \big(\sqrt{\hat v_i} + \epsilon\big)",
            "θ_i ← θ_i - η m̂_i / (√(v̂_i) + ε)",
        ),
        (r"\eta_t = \eta_{\min} + \tfrac{1}{2}\,(\eta - \eta_{\min})", "η_t = η_min + 1/2 (η - η_min)"),
        (r"J = -\left[ y \log h + (1-y)\log(1-h) \right]", "J = -[y log h + (1-y) log(1-h)]"),
        (r"\frac{1}{2N}\sum_{n} \lVert a_n - t_n \rVert^{2}", "1/(2N) Σ_n ‖a_n - t_n‖^2"),
        (r"\begin{aligned} a &= b \\ c &= d \end{aligned}", "a = b\nc = d"),
        (r"\sigma(z) = \begin{cases} z & z > 0 \\[2ex] 0 & z \le 0 \end{cases}", "σ(z) = z, z > 0\n0, z ≤ 0"),
        ("\\frac{\\partial J}{\\partial b_i}\n= \\sum_{n=1}^{N}\n  H_{in},\n\\qquad", "∂J/∂b_i\n= Σ_{n=1..N}\nH_in,"),
    ],
)
def test_latex_reading_of_real_equations(latex, reading):
    """The plain-text reading of equations written in derivations/ (dense, optim and
    the losses' form) is the one a reader would write by hand."""
    assert latex_to_text(latex) == reading


def test_every_real_equation_reads_without_latex_left(root):
    """No real or fixture equation's reading keeps a LaTeX command or a spacing marker."""
    for eq in load_map(root).equations:
        text = latex_to_text(eq.latex)
        assert "\\" not in text and not re.search(r"[\x00-\x02]", text), (eq.id, text)


def test_index_lists_derivations_in_reading_order(fixture_dir):
    """The index puts dense, activations, ..., optim first, then other files
    alphabetically; each equation links to its anchor and its kernel's forms."""
    text = render_index(fixture_dir)
    assert text.index("## [dense.md]") < text.index("## [activations.md]") < text.index("## [zeta.md]")
    assert sorted(["zeta.md", "dense.md", "optim.md", "aaa.md"], key=reading_key) == ["dense.md", "optim.md", "aaa.md", "zeta.md"]
    line = next(li for li in text.splitlines() if "(dense.md#D2.5)" in li)
    loops = next(f for f in kernel_forms() if f.name == "weight_grad_loops")
    assert f"[loops](../indexnet/kernels/dense.py#L{loops.line})" in line
    assert "no code of its own" in next(li for li in text.splitlines() if "(zeta.md#Z1)" in li)


def test_generated_index_equals_committed_readme():
    """derivations/README.md is what ``python -m indexnet.explain.derivations_index --write``
    generates from the current derivations and kernels (regenerate it when this fails)."""
    text = render_index()
    assert index_path().read_text(encoding="utf-8") == text
    assert all(f"({eq.file}#{eq.id})" in text for eq in equations())


def test_explain_imports_neither_numba_nor_numpy(fixture_dir):
    """Explaining every kernel form and listing the map read the kernel modules as source: in a fresh
    interpreter neither Numba nor NumPy is imported (importing Numba alone took most of explain's time),
    so nothing can compile."""
    code = f"""
import contextlib, io, sys
from indexnet.cli import main
from indexnet.cli.explain import explain
from indexnet.explain.explain_map import load_map
emap = load_map({str(fixture_dir)!r})
with contextlib.redirect_stdout(io.StringIO()):
    assert main(["explain", "--derivations-dir", {str(fixture_dir)!r}, "weight_grad"]) == 0
    assert main(["explain", "--list"]) == 0
    assert main(["explain", "relu"]) == 0
    assert main(["explain", "adam_step_loops"]) == 0
for f in emap.forms:
    assert f.name in explain(emap, f.name)
assert "numba" not in sys.modules and "numpy" not in sys.modules, sorted(m for m in sys.modules if "num" in m)
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


def test_kernel_forms_read_from_source_equal_the_imported_modules():
    """kernel_forms() reads the kernel modules with ast; importing them finds the same forms (name, file,
    first line counting decorators, equation), and each form's source is inspect.getsource of its function
    (decorators included), without compiling anything."""
    import importlib
    import inspect

    from indexnet.explain.equations import EQUATION_REF, FORMS, KernelForm, kernel_modules

    imported = []
    for modname in kernel_modules():
        module = importlib.import_module(f"indexnet.kernels.{modname}")
        for name, obj in vars(module).items():
            formula, _, form = name.rpartition("_")
            fn = getattr(obj, "py_func", obj)
            if name.startswith("_") or form not in FORMS or getattr(fn, "__module__", None) != module.__name__:
                continue
            (eq_file, eq_id), = set(EQUATION_REF.findall(inspect.getdoc(fn) or ""))
            imported.append(KernelForm(modname, formula, form, inspect.getsourcefile(fn),
                                       inspect.getsourcelines(fn)[1], eq_file, eq_id))
            assert form_source(imported[-1]) == inspect.getsource(fn)
    assert kernel_forms() == sorted(imported, key=lambda k: (k.module, k.formula, FORMS.index(k.form)))


@pytest.mark.parametrize("command", ["train", "eval", "predict", "demo", "explain", "check"])
def test_help_has_no_sphinx_markup(capsys, command):
    """--help of every command reads as plain text: no ``code`` quotes, no :mod: or :func: roles."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "``" not in text and not re.search(r":(mod|func|class|meth):", text)
