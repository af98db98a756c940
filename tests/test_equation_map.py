"""The equation map (indexnet/explain/equations.py), walked both ways: kernel docstrings →
derivation anchors, and derivation captions → kernel forms.

Written against whatever derivation files and kernel modules exist, so a new topic
(conv2d.md, pooling.md, optim.md, …) is checked by the same rules without editing this file.
"""
import re
from collections import Counter, defaultdict

import pytest

from indexnet.explain import equations as eqmap

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

#: Fused and support equations (dense.md D1.5, D1.6, D2.6-D2.8, D2.14; losses.md
#: L10-L12) are compositions of equations that have all three exact forms; only the
#: trainer runs them, so they have a fast form alone, and tests/test_fast_forms.py
#: checks each against the composition of the exact forms it fuses.
FAST_ONLY = {"dense.forward_activation", "dense.forward_support", "dense.weight_grad_sgd",
             "dense.weight_grad_support", "dense.weight_grad_support_sgd", "dense.hadamard_bias_grad",
             "losses.softmax_cross_entropy", "losses.sigmoid_binary_cross_entropy", "losses.squared_error_output"}

#: Derivations whose every equation must cite the seed equation it re-derives.
SEED_CITED = ("dense.md", "activations.md", "losses.md", "init.md", "gradcheck.md")


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
    """Every equation of the dense-foundation derivations cites the seed it re-derives."""
    mine = [e for e in equations if e.file == name]
    assert mine, f"{name} has no equations"
    assert not [e.id for e in mine if e.seed is None]
