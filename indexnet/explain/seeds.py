"""The seeds' equations, and a checker for every citation of them in ``derivations/``.

The five seed documents (``../shared/seeds/``, the notes this project re-derives) number
their equations, sections, tables and appendices. This module keeps

* :data:`LOCATORS`: every place a citation may point to, seed by seed, read off the seeds
  (so "seed 004 eq. 2.99" or "seed 002 eq. 3" — seed 002 numbers no equation — is an
  error);
* :data:`SEED_EQUATIONS`: the computational statements of the seeds, each with the slip it
  contains (if any) and the derivation block that states and corrects that slip;

and the functions that parse citations (``seed 004 eq. 2.18–2.21``, ``seed 001 §3.3–3.4
and appendix E``, ``seed 002 §8 (ii)``) and compute the coverage table of
``derivations/README.md``: for each seed equation, the derivation equations whose caption
re-derives it, their kernels, and where its slip is stated.

A caption covers a seed equation when it says "Re-derives seed NNN <place>". "Extends seed
NNN <place>" cites without claiming to re-derive (the convolution gradients extend seed
000's chain rule, which has no convolution in it); both are checked for existence.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


def _eqs(*labels: str) -> set[str]:
    return {f"eq. {x}" for x in labels}


def _secs(*labels: str) -> set[str]:
    return {f"§{x}" for x in labels}


def _numbered(first: int, last: int, prefix: str = "") -> list[str]:
    return [f"{prefix}{k}" for k in range(first, last + 1)]


#: Every place a citation may point to, per seed: numbered equations (``eq. N``), sections
#: (``§N``; "section N" is read as §N), appendices, tables and algorithms, as the seeds
#: number them.
LOCATORS: dict[str, set[str]] = {
    # Neural Network Implementation Draft (2019): eqs. (1)-(13), §1, 1.1, 2, 2.1, 3, Tables 1-3
    "000": _eqs(*_numbered(1, 13)) | _secs("1", "1.1", "2", "2.1", "3") | {"Table 1", "Table 2", "Table 3"},
    # Zhang, On a simple matrix based neural network model: eqs. (1)-(7), §1-5, appendices A-F
    "001": _eqs(*_numbered(1, 7))
    | _secs("1", "1.1", "1.2", "1.3", "1.4", "1.5", "2", "2.1", "2.2", "2.3", "2.4",
            "3", "3.1", "3.2", "3.3", "3.4", "4", "5")
    | {f"appendix {c}" for c in "ABCDEF"},
    # Chau's notes: sections 1-9, Algorithm 1, and the items (i), (ii) of §8; no numbered equation
    "002": _secs(*_numbered(1, 9)) | {"Algorithm 1", "§8 (i)", "§8 (ii)"},
    # Zhou, Basic Neural Network Math: eqs. (1)-(8), §1, 1.1, 2, 3, 3.1-3.3
    "003": _eqs(*_numbered(1, 8)) | _secs("1", "1.1", "2", "3", "3.1", "3.2", "3.3"),
    # Wichmann, General feed forward neural networks: eqs. (1.1)-(1.5), (2.1)-(2.37)
    "004": _eqs(*_numbered(1, 5, "1."), *_numbered(1, 37, "2."))
    | _secs("1", "2", "2.1", "2.2", "2.2.1", "2.3", "2.3.1", "2.3.2"),
}


@dataclass(frozen=True)
class SeedEquation:
    """One computational statement of a seed.

    ``slip`` says what is wrong in the seed as written (None when nothing is), and
    ``slip_stated`` names the derivation block that states and corrects it: ``file.md#ID``
    (an equation's block, from its anchor to the next) or ``file.md#Heading text`` (the
    section under that heading). The block must cite this seed equation.
    """

    seed: str
    place: str
    what: str
    slip: str | None = None
    slip_stated: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.seed, self.place)

    @property
    def label(self) -> str:
        return f"seed {self.seed} {self.place}"


_E = SeedEquation
_WHAT_004 = {
    1: "chain rule ∂J/∂W^(L), ∂J/∂b^(L) through A^(L)", 2: "∂A/∂W through σ_L", 3: "∂Z/∂W as a sum",
    4: "∂Z/∂W = δ_ik A_jn", 5: "output weight gradient, index form", 6: "… with a Hadamard product",
    7: "∂J/∂W^(L) = H^(L) (A^(L-1))ᵗ", 8: "H^(L) = ∂J/∂A ⊙ ∂σ/∂Z", 9: "∂Z/∂b = δ_ik",
    10: "output bias gradient, index form", 11: "∂J/∂b^(L) = H^(L) J_N", 12: "Δ^(L) = ∂J/∂A^(L)",
    13: "H^(L) = Δ^(L) ⊙ σ'", 14: "weight gradient with Δ", 15: "bias gradient with Δ",
    16: "Euclidean cost 1/(2N) Σ‖a - t‖²", 17: "… element by element", 18: "∂J/∂A of it",
    19: "… with two Kronecker deltas", 20: "Δ^(L) element", 21: "Δ^(L) = (A - T)/N",
    22: "chain rule into layer L-1", 23: "∂Z^(L)/∂A^(L-1)", 24: "… as a sum", 25: "… = W δ",
    26: "hidden weight gradient, unreduced", 27: "… deltas summed", 28: "… indices swapped",
    29: "… (Wᵗ H) factored", 30: "… Hadamard", 31: "… matrix form", 32: "Δ^(L-1) = (W^(L))ᵗ H^(L)",
    33: "∂J/∂W^(L-1) = H^(L-1) (A^(L-2))ᵗ", 34: "H^(L-1)", 35: "∂Z/∂b of layer L-1",
    36: "hidden bias gradient", 37: "∂J/∂b^(L-1) = H^(L-1) J_N",
}
_SLIPS = "dense.md#Slips in the seeds"
_ELSEWHERE = "examples.md#Slips in equations re-derived elsewhere"

#: The computational statements of the five seeds, in the seeds' order.
SEED_EQUATIONS: tuple[SeedEquation, ...] = (
    # ------------------------------------------------------------------ seed 000
    _E("000", "eq. 1", "vector chain rule ∂z/∂x = (∂y/∂x)(∂z/∂y)"),
    _E("000", "Table 1", "derivatives of Ax, xᵀA, xᵀx, xᵀAx"),
    _E("000", "Table 2", "shapes of the weights and biases of the 3-layer net"),
    _E("000", "§2", "forward pass z_l = W_l a_{l-1} + b_l, a_l = f(z_l), h = z_3",
       "the text names the activation g(t), the equations use f", "examples.md#E2"),
    _E("000", "eq. 2", "mean squared error cost J"),
    _E("000", "eq. 3", "gradient descent update", "p + μ∂J/∂p climbs the cost", "optim.md#O2"),
    _E("000", "eq. 4", "∂J/∂p by the chain rule through h",
       "i indexes both the samples of the sum and the parameter", "examples.md#E3"),
    _E("000", "§2.1", "the list ∂h/∂W_3 … ∂h/∂b_1",
       "order and transposes: ∂h/∂W_2 ends in a_2 for a_1, f'(z_2) sits after W_3ᵀ, "
       "∂h/∂b_1 ends in ∂a_1/∂b_1, the weight gradients lack the transpose of a",
       "examples.md#E3"),
    _E("000", "eq. 5", "output delta δ = h - y", "drops the factor 2/N of eq. 4", _SLIPS),
    _E("000", "eq. 6", "delta recursion δ^(l-1) = W_iᵀ δ^(l) .* f'(z)",
       "W_i and f'(z) carry no layer index: W^(l) and f'(z^(l-1)) are meant", _ELSEWHERE),
    _E("000", "eq. 7", "weight gradient Δ^(l) = δ^(l) a^(l)",
       "names one layer twice and drops the transpose: δ^(l+1) (a^(l))ᵀ", _SLIPS),
    _E("000", "eq. 8", "ReLU"),
    _E("000", "eq. 9", "ReLU derivative (0 at 0)"),
    _E("000", "Table 3", "the local derivatives of the 3-layer net",
       "∂z_2/∂a_1 = W_2 and ∂z_3/∂a_2 = W_3 where Table 1's layout gives W_2ᵀ, W_3ᵀ; "
       "∂z/∂W = a stands for a third-order tensor", "examples.md#E2"),
    _E("000", "eq. 10", "2-D 'convolution' sum",
       "g(m-i, n-j) makes it a cross-correlation, not the convolution it is named", "conv2d.md#C2"),
    _E("000", "eq. 11", "binary cross-entropy", "the second term lacks its minus sign", "losses.md#L8"),
    _E("000", "eq. 12", "binary cross-entropy by cases",
       "same sign slip, and log(h_i) where log(1 - h_i) is meant", "losses.md#L8"),
    _E("000", "eq. 13", "one-hot target vector"),
    # ------------------------------------------------------------------ seed 001
    _E("001", "eq. 1", "the network as a map ℝ^{1×m} → ℝ^{1×n}"),
    _E("001", "§1.3", "input shape ℝ^{1×m}, m = 768",
       "a 28 × 28 image has 784 pixels, not 768", _SLIPS),
    _E("001", "§1.5", "weights ℝ^{n_{j-1}×n_j}, biases ℝ^{1×n_j}"),
    _E("001", "eq. 2", "net = input · weights + bias (row layout)"),
    _E("001", "eq. 3", "out = a(net)"),
    _E("001", "eq. 4", "out = a(input · weights + bias)"),
    _E("001", "eq. 5", "two-layer composition",
       "writes a for layer 1's activation, which §2.1 calls r", "examples.md#E5"),
    _E("001", "eq. 6", "out_2 = s(net_2)"),
    _E("001", "eq. 7", "shape argument ℝ^{1×768} · ℝ^{a×b} + ℝ",
       "768 inputs for 784, and the bias is ℝ^{1×b}, not ℝ", _SLIPS),
    _E("001", "§3.1", "chain rule ∂f/∂t = (∂f/∂g)(∂g/∂t)"),
    _E("001", "§3.2", "gradient descent a^{n+1} = a^n - η∇f"),
    _E("001", "§3.3", "δ_2, δ_1 and the four parameter gradients"),
    _E("001", "§3.4", "δ_2 = out_2 - y, δ_1 = (δ_2 w_2ᵀ) ⊗ ∂out_1/∂net_1"),
    _E("001", "§4", "r (ReLU), s (softmax), L (cross-entropy)",
       "Σ_{n=0}^{a} has a + 1 terms for a vector of a entries", "activations.md#S1"),
    _E("001", "appendix A", "one-hot vector"),
    _E("001", "appendix B", "broadcast addition of a bias row",
       "announces ℝ^{m×1} + ℝ, then defines ℝ^{m×n} + ℝ^{1×n}", "examples.md#E5"),
    _E("001", "appendix C", "rules ∂(xW)/∂x = Wᵀ, ∂(xW)/∂W = xᵀ",
       "writes Wᵀ · ∂L/∂a for ∂L/∂a ∂a/∂W; Wᵀ belongs to the derivative in x, on the right",
       "examples.md#E6"),
    _E("001", "appendix D", "gradient as the column of partial derivatives",
       "evaluates ∂f/∂z_i at the single component a_i instead of at a", "examples.md#E6"),
    _E("001", "appendix E", "recursion of δ_n"),
    _E("001", "appendix F", "softmax Jacobian s_i(δ_ij - s_j) and ∂L/∂z = s - y"),
    # ------------------------------------------------------------------ seed 002
    _E("002", "§3", "parameter count (2×3 + 3) + (3×4 + 4) + (4×1 + 1)",
       "labels the second hidden layer 'Hidden Layer 1 (layer 2)'", _ELSEWHERE),
    _E("002", "§4", "one neuron z_j = w_iᵀx + b_i, and the output h̄ = w^[3]ᵀa + b^[3]",
       "i for j, and a (layer 1, ℝ³) where a^[2] ∈ ℝ⁴ is meant", "examples.md#E7"),
    _E("002", "§5", "vectorized forward pass and J = ½(h - o)²",
       "o is the target here and the output in §8 (i)", "examples.md#E8"),
    _E("002", "§6", "gradient, Jacobian, total derivative, diagonal Jacobian",
       "∇(3x_1²x_2) = [6x_1x_2, 3x_1]ᵀ for [6x_1x_2, 3x_1²]ᵀ; ∂f/∂u_n for ∂f/∂g_n; "
       "y_2 = f_1 for f_2", "examples.md#E8"),
    _E("002", "§7", "the network written out element by element",
       "rows of z^[2] carry four weights for three inputs", "examples.md#E7"),
    _E("002", "Algorithm 1", "stochastic gradient descent"),
    _E("002", "§8", "hidden-layer weight gradient [(a^[3] - y)W^[3] ⊙ g(z^[2])] a^[1]ᵀ",
       "g for g', W^[3] without its transpose, a_i for a_j", "examples.md#E7"),
    _E("002", "§8 (i)", "∂L/∂z^[3] = a^[3] - y for sigmoid + binary cross-entropy"),
    _E("002", "§8 (ii)", "∂z^[3]/∂a^[2], ∂a^[2]/∂z^[2] = diag(g'), ∂z^[2]/∂W_ij = a_j e_i",
       "a^[i] for a^[1], and b^[1] for b^[2] in the expansion of z^[2]", "examples.md#E7"),
    _E("002", "§9", "total differential Σ ∂f_i/∂x_i dx_i",
       "∂f_i for ∂f: there is one scalar function", "examples.md#E8"),
    # ------------------------------------------------------------------ seed 003
    _E("003", "§2", "z_i = F(y), y = Σ w_ai x_i + b_a",
       "the output index i is also the summation index; y carries no index", "examples.md#E9"),
    _E("003", "eq. 1", "Z = F(Yᵀ)", "a spurious transpose: Z = F(Y)", "examples.md#E9"),
    _E("003", "eq. 2", "Y = W · X", "the bias is left out", "examples.md#E9"),
    _E("003", "eq. 3", "Y = F(W · X)", "Y for the activation Z, and no bias", _SLIPS),
    _E("003", "§3.1", "∂E/∂w_11 by the chain rule",
       "F'(Y) for F'(y_1), and x_{ab} for x_b", "examples.md#E10"),
    _E("003", "eq. 4", "∂E/∂W = X (F'(Y)) ⊙ ∂E/∂Z", "shapes: it is (F'(Y) ⊙ ∂E/∂Z) Xᵀ", _SLIPS),
    _E("003", "eq. 5", "∂E/∂B = F'(Y) ⊙ ∂E/∂Z"),
    _E("003", "eq. 6", "∂E/∂x_1 as a sum over outputs"),
    _E("003", "eq. 7", "∂E/∂x_1 with F'(y_m)"),
    _E("003", "eq. 8", "∂E/∂X = Wᵀ(Z ⊙ F'(Y))", "Z where ∂E/∂Z is meant", _SLIPS),
    # ------------------------------------------------------------------ seed 004
    *(_E("004", f"eq. 1.{k}", what) for k, what in enumerate((
        "one layer z = Wx + b, a = σ(z)", "the batch matrix X (S_0 × N)", "first layer of a batch",
        "layer l of a batch, A^(0) = X", "the target matrix T"), start=1)),
    *(
        _E("004", f"eq. 2.{k}", _WHAT_004.get(k, "backpropagation step"),
           *({20: ("writes the element (A_in - T_in) on the right of the matrix Δ^(L)", _ELSEWHERE),
              31: ("the Hadamard bracket closes after (A^(L-2))ᵗ", _SLIPS)}.get(k, ())))
        for k in range(1, 38)
    ),
)


# ---------------------------------------------------------------------------- citations
_SEED = re.compile(r"\bseed\s+(\d{3})\b(?!\s*['’]s)", re.IGNORECASE)
_KIND = r"(?P<kind>eqs?\.?|§|sections?|appendix|appendices|algorithm|table)"
_LABEL = r"(?:\d+(?:\.\d+)*|[A-Z]\b)"
_LOCATOR = re.compile(
    rf"\s*(?:(?:,|;|and|&)\s*)?{_KIND}?\s*(?P<a>{_LABEL})(?:\s*[–-]\s*(?P<b>{_LABEL}))?"
    r"(?P<sub>\s*\((?:i|ii|iii|iv)\))?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Citation:
    """One citation "seed NNN <places>" found in a text, expanded to single places."""

    seed: str
    places: tuple[str, ...]
    text: str
    line: int


def _kind(word: str) -> str:
    w = word.lower()
    if w.startswith("eq"):
        return "eq. "
    if w in ("§",) or w.startswith("section"):
        return "§"
    if w.startswith("append"):
        return "appendix "
    return w.capitalize() + " "


def _expand(a: str, b: str | None) -> list[str]:
    """``2.18``–``2.21`` → 2.18, 2.19, 2.20, 2.21; ``A``–``C`` → A, B, C; one label alone."""
    if b is None:
        return [a]
    if a.isalpha() and b.isalpha():
        return [chr(c) for c in range(ord(a.upper()), ord(b.upper()) + 1)]
    pa, _, la = a.rpartition(".")
    pb, _, lb = b.rpartition(".")
    if pa != pb or not la.isdigit() or not lb.isdigit() or int(lb) < int(la):
        return [a, b]  # not a range of one family: both ends are checked
    return [f"{pa}.{k}" if pa else str(k) for k in range(int(la), int(lb) + 1)]


def parse_citations(text: str) -> list[Citation]:
    """Every "seed NNN <place>[, <place> and <place>]" in ``text``.

    A place is ``eq. N``/``eqs. N–M``, ``§N``/``section N``, ``appendix X``, ``Table N``
    or ``Algorithm N``, optionally followed by an item ``(i)``; further places after
    "," or "and" inherit the kind of the one before. "seed NNN" followed by no place
    (e.g. "seed 000 numbers its layers") is a mention, not a citation.
    """
    out = []
    for m in _SEED.finditer(text):
        seed, pos, kind, places = m.group(1), m.end(), None, []
        while True:
            loc = _LOCATOR.match(text, pos)
            if not loc or (loc.group("kind") is None and kind is None):
                break
            if loc.group("kind") is None and loc.group("a").isalpha() != (kind == "appendix "):
                break
            kind = _kind(loc.group("kind")) if loc.group("kind") else kind
            sub = loc.group("sub").strip() if loc.group("sub") else ""
            for label in _expand(loc.group("a"), loc.group("b")):
                places.append(f"{kind}{label}" + (f" {sub}" if sub else ""))
            pos = loc.end()
        if places:
            line = text.count("\n", 0, m.start()) + 1
            out.append(Citation(seed, tuple(places), text[m.start():pos].strip(), line))
    return out


def check_citations(text: str, where: str = "") -> list[str]:
    """Errors for every citation in ``text`` of a seed or a place that does not exist."""
    errors = []
    for c in parse_citations(text):
        if c.seed not in LOCATORS:
            errors.append(f"{where}:{c.line}: {c.text!r}: there is no seed {c.seed}")
            continue
        for place in c.places:
            if place not in LOCATORS[c.seed]:
                errors.append(f"{where}:{c.line}: {c.text!r}: seed {c.seed} has no {place}")
    return errors


def rederived(caption: str) -> set[tuple[str, str]]:
    """The seed places a caption claims to re-derive: the citations after "Re-derives",
    up to "Kernel:", "Code:" or "Extends"."""
    m = re.search(r"Re-derives(.*?)(?:Extends|Kernel:|Code:|$)", caption)
    if not m:
        return set()
    return {(c.seed, p) for c in parse_citations(m.group(1)) for p in c.places}


# ------------------------------------------------------------------------- blocks, coverage
def block(derivations: Path, ref: str) -> str | None:
    """The text ``file.md#ID`` (anchor to next anchor) or ``file.md#Heading`` (the section
    under the first heading containing that text) names; None when it does not exist."""
    name, _, target = ref.partition("#")
    path = derivations / name
    if not path.is_file():
        return None
    lines = path.read_text(encoding="utf-8").splitlines()
    anchor = f'<a id="{target}"></a>'
    for k, line in enumerate(lines):
        if line.strip() == anchor:
            end = next((j for j in range(k + 1, len(lines)) if lines[j].startswith('<a id="')), len(lines))
            return "\n".join(lines[k:end])
    for k, line in enumerate(lines):
        if line.startswith("#") and target.lower() in line.lower():
            level = len(line) - len(line.lstrip("#"))
            end = next(
                (j for j in range(k + 1, len(lines))
                 if lines[j].startswith("#") and len(lines[j]) - len(lines[j].lstrip("#")) <= level),
                len(lines),
            )
            return "\n".join(lines[k:end])
    return None


@dataclass(frozen=True)
class CoverageRow:
    """One seed equation: the derivation equations that re-derive it and its slip."""

    item: SeedEquation
    equations: tuple[str, ...]  # "file.md#ID"
    kernels: tuple[str, ...]
    slip_ok: bool  # no slip, or the slip is stated where the item says


def coverage(equations, derivations: Path) -> list[CoverageRow]:
    """The coverage table: every :data:`SEED_EQUATIONS` entry against the captions of
    ``equations`` (from :func:`indexnet.explain.equations.equations`)."""
    captions = {}
    for eq in equations:
        path = derivations / eq.file
        lines = path.read_text(encoding="utf-8").splitlines()
        captions[(eq.file, eq.id)] = (lines[eq.line] if eq.line < len(lines) else "", eq)
    rows = []
    for item in SEED_EQUATIONS:
        hits = [eq for caption, eq in captions.values() if item.key in rederived(caption)]
        kernels = tuple(dict.fromkeys(k for eq in hits for k in (eq.kernel, *getattr(eq, "code", ())) if k))
        slip_ok = True
        if item.slip is not None:
            text = block(derivations, item.slip_stated or "")
            slip_ok = text is not None and any(
                c.seed == item.seed and item.place in c.places for c in parse_citations(text)
            )
        rows.append(CoverageRow(item, tuple(f"{e.file}#{e.id}" for e in hits), kernels, slip_ok))
    return rows


def link(derivations: Path, ref: str) -> str:
    """A Markdown link target for ``file.md#ID`` or ``file.md#Heading text`` (GitHub's slug
    of the heading: lower case, punctuation dropped, spaces to hyphens)."""
    name, _, target = ref.partition("#")
    path = derivations / name
    if path.is_file() and f'<a id="{target}"></a>' not in path.read_text(encoding="utf-8"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("#") and target.lower() in line.lower():
                title = line.lstrip("#").strip().lower()
                slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
                return f"{name}#{slug}"
    return ref


def render_coverage(equations, derivations: Path) -> str:
    """The seed-by-seed coverage table of ``derivations/README.md``."""
    rows = coverage(equations, derivations)
    slips = [r for r in rows if r.item.slip]
    out = [
        "## Seed coverage",
        "",
        f"Every computational statement of the five seeds ({len(rows)}, listed in "
        "`indexnet/explain/seeds.py`), the equations whose caption re-derives it, their "
        f"kernel or code, and the slip it contains. {sum(bool(r.equations) for r in rows)} of "
        f"{len(rows)} are re-derived; {sum(r.slip_ok for r in slips)} of the {len(slips)} slips "
        "are stated where the last column links. `tests/test_equation_map.py` fails on an "
        "empty row, an unstated slip, or a citation of a seed place that does not exist.",
    ]
    for seed in sorted({r.item.seed for r in rows}):
        out += ["", f"### Seed {seed}", "", "| Seed | Statement | Re-derived in | Kernel or code | Slip |",
                "|---|---|---|---|---|"]
        for r in (r for r in rows if r.item.seed == seed):
            eqs = ", ".join(f"[{e.split('#')[1]}]({e})" for e in r.equations) or "**none**"
            kernels = ", ".join(f"`{k.removeprefix('indexnet.')}`" for k in r.kernels) or "—"
            if r.item.slip is None:
                slip = "—"
            elif r.slip_ok:
                slip = f"{r.item.slip} ([stated]({link(derivations, r.item.slip_stated)}))"
            else:
                slip = f"{r.item.slip} (**not stated**)"
            out.append(f"| {r.item.place} | {r.item.what} | {eqs} | {kernels} | {slip} |")
    return "\n".join(out) + "\n"
