"""A plain-text reading of an equation's LaTeX source, for terminals (``indexnet explain``).

``latex_to_text(r"\\sum_{n=1}^{N} H_{in} A_{jn}")`` reads ``Σ_{n=1..N} H_in A_jn``.
"""
from __future__ import annotations

import re

GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε",
    "zeta": "ζ", "eta": "η", "theta": "θ", "vartheta": "ϑ", "iota": "ι", "kappa": "κ",
    "lambda": "λ", "mu": "μ", "nu": "ν", "xi": "ξ", "pi": "π", "rho": "ρ", "varrho": "ϱ",
    "sigma": "σ", "varsigma": "ς", "tau": "τ", "upsilon": "υ", "phi": "ϕ", "varphi": "φ",
    "chi": "χ", "psi": "ψ", "omega": "ω", "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ",
    "Lambda": "Λ", "Xi": "Ξ", "Pi": "Π", "Sigma": "Σ", "Upsilon": "Υ", "Phi": "Φ",
    "Psi": "Ψ", "Omega": "Ω",
}
#: symbols read as they are; prefix operators bind to what follows (\partial J -> ∂J)
SYMBOLS = {
    "partial": "∂", "nabla": "∇", "infty": "∞", "ell": "ℓ", "prime": "'", "ldots": "…",
    "dots": "…", "cdots": "⋯", "vdots": "⋮", "ddots": "⋱", "lVert": "‖", "rVert": "‖",
    "Vert": "‖", "|": "‖", "lvert": "|", "rvert": "|", "vert": "|", "mid": "|",
    "langle": "⟨", "rangle": "⟩", "lfloor": "⌊", "rfloor": "⌋", "lceil": "⌈", "rceil": "⌉",
    "{": "{", "}": "}", "%": "%", "_": "_", "&": "&", "#": "#", "top": "ᵀ", "intercal": "ᵀ",
    "forall": "∀", "exists": "∃", "neg": "¬", "emptyset": "∅",
}
PREFIX = {"partial", "nabla", "neg", "lVert", "langle", "lfloor", "lceil"}
#: closing delimiters take no space before them (\rVert after a_n -> a_n‖)
CLOSING = {"rVert", "rangle", "rfloor", "rceil"}
#: markers the reader leaves for the final clean-up: a space unless at an opening, and
#: the removal of the blanks before a closing delimiter, and the end of a sub- or
#: superscript (a space when a letter follows at once: ``H_{in}A_{jn}`` -> H_in A_jn),
#: and an alignment ``&`` (a space before a relation, else a comma: ``z & z > 0`` in
#: cases reads ``z, z > 0``)
SPACE_AFTER_WORD, NO_SPACE_BEFORE, SCRIPT_END, ALIGN = "\x00", "\x01", "\x02", "\x03"
MARKERS = SPACE_AFTER_WORD + NO_SPACE_BEFORE + SCRIPT_END + ALIGN
RELATIONS = "=≤≥<>←→≈∼≡≔⟺⇔⇒⟹∈"
BIG_SYMBOLS = {"Σ", "Π", "∫", "⋃", "⋂"}
#: binary operators and relations, read with a space on each side
OPERATORS = {
    "odot": "⊙", "cdot": "·", "times": "×", "otimes": "⊗", "oplus": "⊕", "circ": "∘",
    "ast": "∗", "star": "⋆", "pm": "±", "mp": "∓", "div": "÷", "le": "≤", "leq": "≤",
    "ge": "≥", "geq": "≥", "ne": "≠", "neq": "≠", "approx": "≈", "equiv": "≡", "sim": "∼",
    "propto": "∝", "to": "→", "rightarrow": "→", "leftarrow": "←", "Rightarrow": "⇒",
    "implies": "⇒", "iff": "⇔", "Leftrightarrow": "⇔", "Longleftrightarrow": "⟺",
    "leftrightarrow": "↔", "longrightarrow": "⟶", "Longrightarrow": "⟹", "longmapsto": "⟼", "mapsto": "↦", "in": "∈", "notin": "∉", "subset": "⊂",
    "subseteq": "⊆", "cup": "∪", "cap": "∩", "coloneqq": "≔", "wedge": "∧", "vee": "∨",
    "quad": " ", "qquad": " ", ",": " ", ";": " ", ":": " ", " ": " ", "\\": "\n",
}
#: large operators whose limits read as Σ_{n=1..N}
BIG = {"sum": "Σ", "prod": "Π", "int": "∫", "bigcup": "⋃", "bigcap": "⋂", "max": "max",
       "min": "min", "lim": "lim", "argmax": "argmax", "argmin": "argmin", "sup": "sup", "inf": "inf"}
FUNCTIONS = {"log", "ln", "exp", "tanh", "sinh", "cosh", "sin", "cos", "tan", "det", "tr",
             "diag", "sgn", "sign", "softmax", "dim", "rank"}
#: one-argument commands that keep only their argument
WRAPPERS = {"mathrm", "mathbf", "mathit", "mathsf", "mathtt", "boldsymbol", "bm", "vec",
            "operatorname", "text", "textrm", "textbf", "textit", "mbox", "mathcal",
            "mathscr", "mathfrak", "underbrace", "overbrace", "underline"}
#: delimiter sizes: keep the delimiter that follows (``\left.`` reads as nothing)
SIZES = {"left", "right", "big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr",
         "biggl", "biggr", "middle"}
#: one-argument commands dropped entirely
DROPPED = {"label", "tag", "begin", "end", "hspace", "vspace", "phantom"}
#: commands without arguments that read as nothing
SILENT = {"displaystyle", "textstyle", "nonumber", "notag", "limits", "nolimits", "!"}
BLACKBOARD = {"R": "ℝ", "N": "ℕ", "Z": "ℤ", "Q": "ℚ", "C": "ℂ", "E": "𝔼", "1": "𝟙"}
ACCENTS = {"hat": "\u0302", "widehat": "\u0302", "bar": "\u0304", "overline": "\u0304",
           "tilde": "\u0303", "widetilde": "\u0303", "dot": "\u0307", "ddot": "\u0308"}
TOKEN = re.compile(r"\\[A-Za-z]+|\\.|\s+|.", re.DOTALL)
#: a factor that needs no parentheses in a/b: a number, or a symbol with its scripts
ATOM = re.compile(r"^(?:\d+(?:\.\d+)?|[∂∇]|[∂∇]?\w[\u0300-\u036f]*'*(?:[_^](?:\([^()]*\)|\{[^{}]*\}|[\w']+))*)$")


class _Reader:
    """A recursive-descent reader of one LaTeX formula (the converter's state)."""

    def __init__(self, latex: str) -> None:
        self.tokens = TOKEN.findall(latex)
        self.pos = 0
        self.depth = 0  # braces open around the current token

    def peek(self, skip_space: bool = False) -> str | None:
        """The next token (optionally the next one that is not blank)."""
        pos = self.pos
        while skip_space and pos < len(self.tokens) and self.tokens[pos].isspace():
            pos += 1
        return self.tokens[pos] if pos < len(self.tokens) else None

    def take(self, skip_space: bool = False) -> str | None:
        """Consume and return the next token (optionally skipping blanks first)."""
        if skip_space:
            self.skip_space()
        tok = self.peek()
        self.pos += tok is not None
        return tok

    def skip_space(self) -> None:
        """Consume blanks."""
        while (tok := self.peek()) is not None and tok.isspace():
            self.pos += 1

    def sequence(self, until: str | None = None) -> str:
        """Read tokens up to ``until`` (consumed) or the end."""
        out = []
        self.depth += until is not None
        while (tok := self.peek()) is not None:
            if tok == until:
                self.pos += 1
                break
            out.append(self.item())
        self.depth -= until is not None
        return "".join(out)

    def argument(self) -> str:
        """One argument: a ``{group}`` or a single token."""
        tok = self.take(skip_space=True)
        if tok == "{":
            return self.sequence("}")
        return "" if tok is None else self.token(tok)

    def scripts(self) -> tuple[str | None, str | None]:
        """The subscript and superscript that follow, in either order."""
        sub = sup = None
        while self.peek(skip_space=True) in ("_", "^"):
            kind = self.take(skip_space=True)
            if kind == "_":
                sub = self.argument()
            else:
                sup = self.argument()
        return sub, sup

    def item(self) -> str:
        """Read one token with what it governs."""
        tok = self.take()
        if tok in ("_", "^"):
            return script(tok, self.argument()) + SCRIPT_END
        return self.token(tok)

    def token(self, tok: str) -> str:
        """Read one token (already consumed) with the arguments it takes."""
        if tok.isspace():  # a line break outside braces stays one, as the author set it
            return "\n" if "\n" in tok and not self.depth else " "
        if tok == "{":
            return self.sequence("}")
        if tok == "&":
            return ALIGN
        if tok == "~":
            return " "
        if not tok.startswith("\\"):
            return tok
        name = tok[1:]
        if name in GREEK:
            return GREEK[name]
        if name in SYMBOLS:
            if name in PREFIX:
                self.skip_space()
            return (NO_SPACE_BEFORE if name in CLOSING else "") + SYMBOLS[name]
        if name in OPERATORS:
            sym = OPERATORS[name]
            if name == "\\" and self.peek() == "[":  # \\[2ex]: drop the extra spacing
                self.sequence("]")
            return sym if sym.isspace() else f" {sym} "
        if name in BIG:
            sub, sup = self.scripts()
            symbol = BIG[name]
            spaced = sub is not None or sup is not None or symbol in BIG_SYMBOLS
            return SPACE_AFTER_WORD + limits(symbol, sub, sup) + (" " if spaced else "")
        if name in FUNCTIONS:
            return SPACE_AFTER_WORD + name
        if name in ("frac", "dfrac", "tfrac"):
            num, den = self.argument(), self.argument()
            return f"{SPACE_AFTER_WORD}{factor(num)}/{factor(den)}"
        if name == "sqrt":
            arg = tidy(self.argument()).strip()
            return SPACE_AFTER_WORD + "√" + (arg if re.fullmatch(r"\w", arg) else f"({arg})")
        if name == "mathbb":
            arg = self.argument()
            return BLACKBOARD.get(arg, arg)
        if name in ACCENTS:
            arg = self.argument()
            return arg + ACCENTS[name] if len(arg) == 1 else f"{name}({arg})"
        if name in DROPPED:
            self.argument()
            return ""
        if name in SIZES:
            nxt = self.take(skip_space=True)
            return "" if nxt in (".", None) else self.token(nxt)
        if name in WRAPPERS:
            return self.argument()
        return "" if name in SILENT else name


def script(kind: str, content: str) -> str:
    """``_{ij}`` -> ``_ij``, ``^{(l)}`` -> ``^(l)``, ``^{l-1}`` -> ``^(l-1)``, ``^{\\top}`` -> ``ᵀ``."""
    content = tidy(content).strip()
    if kind == "^" and content in ("ᵀ", "'", "''"):
        return content
    if re.fullmatch(r"[\w' ]+", content):
        return kind + content.replace(" ", "")
    if _wrapped(content):
        return kind + content
    return f"{kind}({content})"


def limits(symbol: str, sub: str | None, sup: str | None) -> str:
    """A large operator with its limits: ``Σ_{n=1..N}``, ``Σ_n``, ``Σ_{k,n}``."""
    sub = tidy(sub).strip() if sub is not None else None
    sup = tidy(sup).strip() if sup is not None else None
    if sub is not None and sup is not None:
        return f"{symbol}_{{{sub}..{sup}}}"
    if sub is not None:
        return f"{symbol}_{sub}" if re.fullmatch(r"\w+", sub) else f"{symbol}_{{{sub}}}"
    if sup is not None:
        return f"{symbol}^{sup}" if re.fullmatch(r"\w+", sup) else f"{symbol}^{{{sup}}}"
    return symbol


def _wrapped(text: str) -> bool:
    """Whether ``text`` is one parenthesised group, e.g. ``(l-1)`` but not ``(a)(b)``."""
    if not (text.startswith("(") and text.endswith(")")):
        return False
    depth = 0
    for k, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and k < len(text) - 1:
            return False
    return True


def factor(text: str) -> str:
    """``text`` as a numerator or denominator: bare when it is one symbol, else ``(text)``."""
    text = " ".join(tidy(text).split())
    return text if ATOM.match(text) or _wrapped(text) else f"({text})"


def tidy(text: str) -> str:
    """Resolve the reader's spacing markers in a piece of the reading."""
    text = re.sub(f"{SCRIPT_END}(?={SPACE_AFTER_WORD})", "", text)
    text = re.sub(f"{SCRIPT_END}(?=[^\\W\\d_]|[∂∇√])", " ", text)
    text = re.sub(f"(?<=[\\w)\\]'\u0300-\u036f]){SPACE_AFTER_WORD}", " ", text)
    text = re.sub(f" *{NO_SPACE_BEFORE}", "", text)
    text = re.sub(f"[ ]*{ALIGN}(?=[ ]*(?:[{RELATIONS}]|$|\n))", " ", text, flags=re.MULTILINE)
    text = re.sub(f"^[ ]*{ALIGN}", "", text, flags=re.MULTILINE)
    text = re.sub(f"[ ]*{ALIGN}[ ]*", ", ", text)
    return re.sub(f"[{MARKERS}]", "", text)


def latex_to_text(latex: str) -> str:
    """A plain-text reading of a LaTeX formula, good enough to read in a terminal.

    Parameters
    ----------
    latex : str
        The formula, as written between ``$$`` in a derivation.

    Returns
    -------
    str
        The reading: ``\\frac{a}{b}`` -> ``a/b`` (parenthesised when not a single
        symbol), ``\\sum_{n=1}^{N}`` -> ``Σ_{n=1..N}``, ``\\partial`` -> ``∂``,
        ``\\odot`` -> ``⊙``, ``^{(l)}`` -> ``^(l)``, ``_{ij}`` -> ``_ij``, Greek letters
        -> Unicode; the formula's lines (and an aligned block's rows) stay lines.

    Examples
    --------
    >>> latex_to_text(r"\\frac{\\partial J}{\\partial W_{ij}} = \\sum_{n=1}^{N} H_{in} A_{jn}")
    '∂J/∂W_ij = Σ_{n=1..N} H_in A_jn'
    """
    text = tidy(_Reader(latex).sequence())
    lines = (" ".join(line.split()) for line in text.splitlines())
    lines = (re.sub(r"([(\[{]) | ([)\]},])", r"\1\2", line) for line in lines)
    return "\n".join(line for line in lines if line)


# ------------------------------------------------------------------------- command line
