"""``indexnet demo square|sphere``: seed 003's two figures, trained from scratch.

``square`` fits f(x) = x² on [-1, 1] with seed 000's 3-layer regression net (preset
``seed000``: 1-16-16-1 ReLU, mse, full-batch gradient descent) and draws the fitted
curve over the data (seed 003, Figure 2). ``sphere`` maps the angles (θ, φ) to the
point on the unit sphere (preset ``sphere``: 2-64-64-3 tanh, mse, Adam) and draws the
predicted points on the sphere (seed 003, Figure 1). The figure is ``fit.png`` in the
output folder, beside the model, history and curves.
"""
from __future__ import annotations

from indexnet.cli import plain_text

import sys
import time
from pathlib import Path

from indexnet.cli.train import (add_common_options, add_output_options, default_out, execute,
                                passive_workers_when_busy, set_threads)

DEMOS = {"square": "seed000", "sphere": "sphere"}
DEMO_OPTIONS = ("epochs", "lr", "seed", "engine", "dtype", "log_every")


def add_parser(sub, name: str, help_text: str):
    p = sub.add_parser(name, help=help_text, description=plain_text(__doc__.split("\n\n")[1]))
    p.add_argument("which", metavar="DEMO", choices=tuple(DEMOS), help="square: Figure 2 (x²); sphere: Figure 1")
    p.add_argument("--preset", default=None, help="train another preset on the demo's data (e.g. seed002 on sphere)")
    add_common_options(p, DEMO_OPTIONS)
    add_output_options(p)
    return p


def run(args) -> int:
    started = time.perf_counter()
    note = passive_workers_when_busy()  # before any parallel kernel starts OpenMP
    if note:
        print(note)
    from indexnet.train.trainer import Trainer, resolve_config

    try:
        set_threads(args.threads)
        options = {k: getattr(args, k) for k in DEMO_OPTIONS}
        config = resolve_config(args.preset or DEMOS[args.which], **options, data=args.which)
        out = Path(args.out) if args.out else default_out(config)
        trainer = Trainer(config, out=out, log=None if args.quiet else print, progress=False if args.quiet else None)
    except (ValueError, TypeError) as exc:
        print(f"indexnet demo: error: {exc}", file=sys.stderr)
        return 2
    code = execute(trainer, quiet=args.quiet, plots=True, started=started)
    if code == 0:
        print(f"figure: {trainer.out / 'fit.png'}")
    return code
