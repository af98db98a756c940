"""``indexnet check``: gradient checks of small random networks, every engine and loss.

Each row builds a small float64 network, computes its gradients with one engine's
backward pass and compares every parameter's (and the input's) gradient with central
finite differences and seed 002's directional test (:func:`indexnet.oracle.finite_diff.check_network`).
"""
from __future__ import annotations

from indexnet.cli import plain_text

import sys
import time

import numpy as np

ENGINES = ("literal", "loops", "numpy", "fast")

#: name -> (layers spec, input shape, loss)
CASES = {
    "mse": ("4:tanh,2:identity", (3,), "mse"),
    "half_se": ("4:relu,3:relu,2:identity", (3,), "half_se"),
    "euclidean": ("4:sigmoid,2:identity", (3,), "euclidean"),
    "cross_entropy": ("5:leaky_relu,3:softmax", (3,), "cross_entropy"),
    "binary_cross_entropy": ("4:tanh,2:sigmoid", (3,), "binary_cross_entropy"),
    "conv+pool (cross_entropy)": ("conv2@3x3/p1:tanh,avgpool2,conv2@2x2:tanh,3:softmax", (1, 4, 4), "cross_entropy"),
}


def add_parser(sub, name: str, help_text: str):
    p = sub.add_parser(name, help=help_text, description=plain_text(__doc__.split("\n\n")[1]))
    p.add_argument("--engines", default=",".join(ENGINES), help="comma-separated engines to check")
    p.add_argument("--samples", type=int, default=4, help="examples in each random batch")
    p.add_argument("--seed", type=int, default=0, help="seed of the networks and data")
    return p


def make_case(name: str, n: int, seed: int):
    """A random float64 network and batch for one case."""
    from indexnet.data import one_hot
    from indexnet.nn.network import Network
    from indexnet.nn.spec import build_layers

    spec, input_shape, loss = CASES[name]
    rng = np.random.default_rng(seed)
    features = int(np.prod(input_shape))
    n_out = int(spec.rsplit(",", 1)[-1].split(":")[0])
    layers, shape = build_layers(spec, features, input_shape if len(input_shape) == 3 else None, n_out)
    net = Network(layers, shape, loss, seed=seed)
    X = rng.standard_normal(shape + (n,))
    if loss == "cross_entropy":
        Y = one_hot(rng.integers(0, n_out, n), n_out)
    elif loss == "binary_cross_entropy":
        Y = rng.uniform(0, 1, (n_out, n))
    else:
        Y = rng.standard_normal((n_out, n))
    return net, X, Y


def run(args) -> int:
    from indexnet.oracle.finite_diff import check_network

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    bad = [e for e in engines if e not in ENGINES]
    if bad:
        print(f"indexnet check: error: --engines: expected some of {', '.join(ENGINES)}, got {', '.join(bad)}",
              file=sys.stderr)
        return 2
    rows = [("case", "engine", "result", "worst rel. error", "checked", "seconds")]
    failed = 0
    for name in CASES:
        for engine in engines:
            net, X, Y = make_case(name, args.samples, args.seed)
            t0 = time.perf_counter()
            try:
                report = check_network(net, X, Y, engine)
                ok = report.ok
                worst = f"{report.worst.rel_error:.2e}" if report.worst else "-"
                checked = str(report.n_checked)
            except Exception as exc:  # report every case, never stop the table
                ok, worst, checked = False, f"{type(exc).__name__}: {exc}"[:60], "-"
            failed += not ok
            rows.append((name, engine, "pass" if ok else "FAIL", worst, checked, f"{time.perf_counter() - t0:.2f}"))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(r[c].ljust(widths[c]) for c in range(len(r))).rstrip() for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    print("\n".join(lines))
    print(f"{len(rows) - 1 - failed} passed, {failed} failed")
    return 1 if failed else 0
