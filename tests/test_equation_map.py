"""The equation map (indexnet/explain/equations.py), walked both ways: kernel docstrings →
derivation anchors, and derivation captions → kernel forms.

Written against whatever derivation files and kernel modules exist, so a new topic
(conv2d.md, pooling.md, optim.md, …) is checked by the same rules without editing this file.
"""
import inspect
import re
from collections import Counter, defaultdict

import pytest

from indexnet.explain import equations as eqmap
from indexnet.explain import seeds

DERIVATIONS = sorted(p for p in eqmap.derivations_dir().glob("*.md") if p.name != "README.md")

#: Formulas that legitimately lack one of the three forms (CONTRIBUTING.md: "three forms
#: per formula"). Each entry says which form is missing and why.
MISSING_FORMS_ALLOWED = {
    # A loss value is a reduction of the whole batch to one scalar; there is no Kronecker
    # delta to keep and no unreduced sum to state, so it has only loops and numpy forms
    # (losses.md L1, L5, L8).
    "losses.squared_error_value": {"literal"},
    "losses.cross_entropy_value": {"literal"},
    "losses.binary_cross_entropy_value": {"literal"},
}

#: Fused and support equations (dense.md D1.5, D1.6, D2.6-D2.8, D2.14, D2.15; losses.md
#: L10-L12; conv2d.md C12; pooling.md P8; augment.md T8) are compositions of equations that
#: have all three exact forms; only the trainer runs them, so they have a fast form alone, and
#: tests/test_fast_forms.py (tests/test_fast_conv.py for C12 and P8, tests/test_augment.py for
#: T8) checks each against the composition of the exact forms it fuses.
FAST_ONLY = {"dense.forward_activation", "dense.forward_support", "dense.weight_grad_sgd",
             "dense.weight_grad_support", "dense.weight_grad_support_sgd", "dense.hadamard_bias_grad", "dense.hadamard_bias_sgd",
             "optim.decay", "losses.softmax_cross_entropy", "losses.sigmoid_binary_cross_entropy", "losses.squared_error_output",
             "conv2d.forward_activation", "pooling.maxpool_backward_hadamard_bias", "augment.distort"}

#: Derivations whose every equation must cite the seed equation it re-derives (or say
#: "not in the seeds").
SEED_CITED = ("dense.md", "activations.md", "losses.md", "init.md", "gradcheck.md", "examples.md")


@pytest.fixture(scope="module")
def forms():
    return eqmap.kernel_forms()


@pytest.fixture(scope="module")
def equations():
    return eqmap.equations()


@pytest.mark.parametrize("path", DERIVATIONS, ids=lambda p: p.name)
def test_every_derivation_parses(path):
    """Each derivation file parses: every anchor is followed by a well-formed caption that
    names its kernel (or none) and by a $$ block, and no anchor is skipped."""
    parsed = eqmap.parse_derivation(path)
    anchors = [line for line in path.read_text(encoding="utf-8").splitlines() if eqmap.ANCHOR.match(line)]
    assert len(parsed) == len(anchors) > 0
    for eq in parsed:
        assert eq.title, f"{path.name}#{eq.id}: empty title"
        assert eq.latex, f"{path.name}#{eq.id}: no $$ block under the caption"
        if eq.kernel is not None:
            assert re.fullmatch(r"\w+\.\w+", eq.kernel), f"{path.name}#{eq.id}: kernel {eq.kernel!r}"


def test_no_duplicate_anchor_ids():
    """Equation ids are unique across all derivations (their prefix names the topic)."""
    ids = Counter()
    for path in DERIVATIONS:
        for line in path.read_text(encoding="utf-8").splitlines():
            m = eqmap.ANCHOR.match(line)
            if m:
                ids[m.group(1)] += 1
    assert not [i for i, count in ids.items() if count > 1]


def test_every_kernel_form_cites_an_existing_anchor(forms, equations):
    """Kernel → derivation: each form's docstring names a file#ID that exists, and that
    equation's caption names this same kernel."""
    by_ref = {(e.file, e.id): e for e in equations}
    assert forms
    for f in forms:
        eq = by_ref.get((f.equation_file, f.equation))
        assert eq is not None, f"{f.kernel} ({f.form}) cites missing {f.equation_file}#{f.equation}"
        assert eq.kernel == f.kernel, f"{f.equation_file}#{f.equation} names {eq.kernel}, cited by {f.kernel}"


def test_every_named_kernel_exists(forms, equations):
    """Derivation → kernel: each caption that names module.formula names a formula that has
    at least a loops or a numpy form."""
    available = defaultdict(set)
    for f in forms:
        available[f.kernel].add(f.form)
    for eq in equations:
        if eq.kernel is not None:
            assert available[eq.kernel] & {"loops", "numpy", "fast"}, f"{eq.file}#{eq.id} names {eq.kernel}"


def test_every_formula_has_three_forms(forms):
    """Each formula has literal, loops and numpy forms, unless the allow-list above says
    which form it lacks and why; a fused formula has its fast form only; allow-list
    entries must not go stale."""
    present = defaultdict(set)
    for f in forms:
        present[f.kernel].add(f.form)
    for kernel, have in present.items():
        if kernel in FAST_ONLY:
            assert have == {"fast"}, kernel
            continue
        assert set(eqmap.EXACT_FORMS) - have == MISSING_FORMS_ALLOWED.get(kernel, set()), kernel
    assert FAST_ONLY <= set(present)


@pytest.mark.parametrize("name", SEED_CITED)
def test_dense_foundation_cites_the_seeds(name, equations):
    """Every equation of the dense-foundation derivations cites the seed it re-derives, or
    says that it is not in the seeds."""
    mine = [e for e in equations if e.file == name]
    assert mine, f"{name} has no equations"
    captions = {e.id: caption(e) for e in mine}
    assert not [i for i, c in captions.items() if not seeds.parse_citations(c) and "not in the seeds" not in c]


def caption(eq) -> str:
    """The caption line of an equation (the line after its anchor)."""
    return (eqmap.derivations_dir() / eq.file).read_text(encoding="utf-8").splitlines()[eq.line]


# ----------------------------------------------------------- "Kernel: none" is checked
def test_equations_cited_by_code_name_that_code(equations):
    """An equation the package's source cites as derivations/<file>.md#ID names a kernel
    or its code: "Kernel: none" without "Code:" claims there is no code, and a citation
    from the source contradicts it."""
    by_id = {e.id: e for e in equations}
    refs = eqmap.code_references()
    assert refs, "no equation is cited from the package source"
    wrong = {i: sorted(files) for i, files in refs.items() if by_id[i].kernel is None and not by_id[i].code}
    assert not wrong, f"marked 'Kernel: none' without 'Code:', yet cited by: {wrong}"


def cited_ids(text: str, known: set[str]) -> set[str]:
    """Equation ids a text names: formal references with their ranges, and bare ids."""
    ids = {i for i in re.findall(r"\b[A-Z]+\d[\w.]*\w|\b[A-Z]+\d\b", text) if i in known}
    for m in eqmap._SOURCE_REF.finditer(text):
        if m.group("eq"):
            ids.update(eqmap._expand_ids(m.group("eq"), m.group("to"), known))
    return ids


def test_code_entries_exist_and_name_their_equation(equations):
    """Each "Code: `indexnet.…`" of a caption imports, and the named function or class
    (its source, or its module's docstring) names the equation."""
    known = {e.id for e in equations}
    entries = [(e, path) for e in equations for path in e.code]
    assert entries
    for eq, path in entries:
        obj = eqmap.resolve_code(path)
        fn = getattr(obj, "py_func", obj)
        text = inspect.getsource(fn) + (inspect.getmodule(fn).__doc__ or "")
        assert eq.id in cited_ids(text, known), f"{eq.file}#{eq.id}: {path} does not name {eq.id}"


def test_the_map_fails_on_a_kernel_citing_an_equation_marked_none(tmp_path):
    """The check above can fail: a derivation marking D1.4 'Kernel: none' while
    dense.forward cites it is reported."""
    import shutil

    for p in eqmap.derivations_dir().glob("*.md"):
        shutil.copy(p, tmp_path / p.name)
    path = tmp_path / "dense.md"
    path.write_text(path.read_text(encoding="utf-8").replace("Kernel: `dense.forward`", "Kernel: none"), encoding="utf-8")
    by_id = {e.id: e for e in eqmap.parse_derivation(path)}
    refs = eqmap.code_references()
    assert by_id["D1.4"].kernel is None and not by_id["D1.4"].code and "D1.4" in refs


# ------------------------------------------------------------------- seed citations
@pytest.mark.parametrize("path", DERIVATIONS, ids=lambda p: p.name)
def test_every_seed_citation_exists(path):
    """Every "seed NNN <place>" in a derivation names a seed and an equation, section,
    table, appendix or algorithm that seed has (indexnet/explain/seeds.py LOCATORS)."""
    assert not seeds.check_citations(path.read_text(encoding="utf-8"), path.name)


@pytest.mark.parametrize(
    "text, expect",
    [
        ("Re-derives seed 004 eq. 2.99.", "seed 004 has no eq. 2.99"),
        ("Re-derives seed 002 eq. 3;", "seed 002 has no eq. 3"),
        ("see seed 007 §1", "there is no seed 007"),
        ("Re-derives seed 001 appendix G", "seed 001 has no appendix G"),
        ("Re-derives seed 004 eq. 2.36–2.38", "seed 004 has no eq. 2.38"),
    ],
)
def test_citation_checker_rejects_what_the_seeds_do_not_have(text, expect):
    """The checker is not a presence test: places the seeds lack are errors."""
    errors = seeds.check_citations(text, "x.md")
    assert errors and expect in errors[0]


def test_citation_parser_reads_lists_ranges_and_items():
    """Ranges expand, kinds carry over after "and" and ",", items (i) attach, mentions are no citations."""
    cites = seeds.parse_citations(
        "seed 004 eq. 2.18–2.21; seed 001 §3.3–3.4 and appendix E; seed 002 §8 (ii); "
        "seed 004 eq. 2.8 and 2.13; Seed 000 numbers its layers; seed 003 section 3.1"
    )
    assert [c.places for c in cites] == [
        ("eq. 2.18", "eq. 2.19", "eq. 2.20", "eq. 2.21"), ("§3.3", "§3.4", "appendix E"),
        ("§8 (ii)",), ("eq. 2.8", "eq. 2.13"), ("§3.1",),
    ]


def test_every_seed_equation_is_rederived_and_every_slip_stated(equations):
    """The coverage table has no empty row: each computational statement of the seeds is
    re-derived by at least one caption ("Re-derives seed NNN <place>"), and each slip is
    stated in the block the list names, which cites that seed place."""
    rows = seeds.coverage(equations, eqmap.derivations_dir())
    assert len(rows) == len(seeds.SEED_EQUATIONS) > 90
    assert not [r.item.label for r in rows if not r.equations], "not re-derived"
    assert not [r.item.label for r in rows if not r.slip_ok], "slip not stated"
    for item in seeds.SEED_EQUATIONS:
        assert item.place in seeds.LOCATORS[item.seed], item.label
        assert (item.slip is None) == (item.slip_stated is None), item.label


def test_extends_is_not_rederives():
    """A caption that extends a seed equation does not cover it."""
    assert seeds.rederived("**(C7) K.** Extends seed 000 eq. 4 (which has no convolution). Kernel: x") == set()
    assert seeds.rederived("**(E3) W.** Re-derives seed 000 eq. 4 and §2.1 (the weights); Kernel: none") == {
        ("000", "eq. 4"), ("000", "§2.1")}


@pytest.mark.parametrize("path", DERIVATIONS, ids=lambda p: p.name)
def test_no_control_characters_in_derivations(path):
    """A derivation holds no control character but the line break: a tab, form feed or
    backspace in a formula is a LaTeX command (\\text, \\frac, \\beta) eaten by an escape."""
    for k, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):  # not splitlines: it splits at \f
        bad = [hex(ord(c)) for c in line if ord(c) < 32]
        assert not bad, f"{path.name}:{k}: control characters {bad} in {line[:60]!r}"
