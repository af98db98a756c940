"""``indexnet train``: train a network and report its test accuracy.

With no options it trains seed 001's kind of network (one 800-unit ReLU layer,
softmax, cross-entropy; 64-800-10 on the 64 pixels) on scikit-learn's bundled 8×8
digits and reports its test accuracy. Every option left out comes from the preset
(``--preset``, or the data set's default preset), see :mod:`indexnet.train.presets`.
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

#: options passed straight to :func:`indexnet.train.trainer.resolve_config` (dest -> help)
CONFIG_OPTIONS: dict[str, tuple[type, str]] = {
    "data": (str, "data set: digits (embedded, default), mnist, fashion (IDX files in --data-dir), "
                  "square, sphere (seed 003), csv (--csv FILE)"),
    "data_dir": (str, "folder with the four MNIST / Fashion-MNIST IDX files (raw or .gz)"),
    "csv": (str, "CSV file for --data csv (one sample per row, numbers only)"),
    "target": (str, "CSV target column: index (default -1, the last) or header name"),
    "task": (str, "CSV task: classification (integer labels) or regression"),
    "split_seed": (int, "seed of the train/validation/test split (default 0: a fixed split)"),
    "layers": (str, "layers, e.g. 800:relu,10:softmax or conv8@3x3/p1:relu,maxpool2,10:softmax"),
    "loss": (str, "mse, half_se, euclidean, cross_entropy, binary_cross_entropy (default: from the output layer)"),
    "optimizer": (str, "sgd, momentum or adam"),
    "lr": (float, "learning rate (initial, when a schedule is used)"),
    "momentum": (float, "momentum coefficient μ (optimizer momentum)"),
    "beta1": (float, "Adam β1"),
    "beta2": (float, "Adam β2"),
    "weight_decay": (float, "L2 weight decay λ on weights and kernels (not biases)"),
    "schedule": (str, "learning-rate schedule: constant, step or cosine"),
    "step_size": (int, "step schedule: epochs between decays (default a third of the run)"),
    "gamma": (float, "step schedule: factor per decay"),
    "lr_min": (float, "cosine schedule: final learning rate"),
    "mode": (str, "minibatch (shuffled epochs), sgd (seed 002 Algorithm 1: one example drawn "
                  "uniformly per step) or fullbatch (seed 000 eq. 3, sign corrected)"),
    "batch_size": (int, "examples per step in minibatch mode"),
    "steps_per_epoch": (int, "steps per epoch in sgd mode (default N) or fullbatch mode (default 1)"),
    "epochs": (int, "number of epochs"),
    "seed": (int, "seed of the initial weights and of the batch order"),
    "engine": (str, "loops (Numba kernels, fastmath build) or numpy"),
    "dtype": (str, "float32 or float64"),
    "eval_batch_size": (int, "examples per forward pass when evaluating"),
    "checkpoint_every": (int, "write checkpoint.npz every this many epochs (default 1)"),
    "log_every": (int, "print a metrics line every this many epochs (default 1)"),
    "augment": (str, "distort every training batch afresh (image data): affine[:rotate=10,shear=10,scale=0.1,"
                     "shift=2] (degrees, fraction, pixels), elastic[:ALPHA,SIGMA] (Simard: 34,4), or both "
                     "joined by +; none by default"),
}
CHOICES = {
    "data": ("digits", "mnist", "fashion", "square", "sphere", "csv"),
    "task": ("classification", "regression"),
    "optimizer": ("sgd", "momentum", "adam"),
    "schedule": ("constant", "step", "cosine"),
    "mode": ("minibatch", "sgd", "fullbatch"),
    "engine": ("loops", "numpy"),
    "dtype": ("float32", "float64"),
    "loss": ("mse", "half_se", "euclidean", "cross_entropy", "binary_cross_entropy"),
}


def add_common_options(p: argparse.ArgumentParser, names) -> None:
    """Add the config options ``names`` (all default None: unset means preset / default)."""
    for dest in names:
        typ, help_text = CONFIG_OPTIONS[dest]
        p.add_argument("--" + dest.replace("_", "-"), dest=dest, type=typ, default=None,
                       choices=CHOICES.get(dest), help=help_text)


def add_output_options(p: argparse.ArgumentParser) -> None:
    """--out, --quiet, --no-plots, --threads."""
    p.add_argument("--out", default=None, help="output folder (default runs/<data>-<preset>-<time>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch lines")
    p.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for Numba and BLAS (default: all cores)")


def add_parser(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=__doc__.split("\n\n")[1].replace("\n", " "))
    p.add_argument("--preset", default=None,
                   help="digits (the default on --data digits), seed001 (800:relu,10:softmax, the MNIST "
                        "settings), seed000 (x², full-batch GD), seed002 (2-3-4-3 on the "
                        "sphere, Algorithm 1 SGD), sphere, cnn, dense-cnn, mnist-affine, mnist-elastic, mnist-cnn "
                        "(MNIST with distortions); options given override it")
    add_common_options(p, CONFIG_OPTIONS)
    p.add_argument("--resume", default=None, metavar="CHECKPOINT",
                   help="continue a run from its checkpoint.npz exactly as if it had never stopped")
    add_output_options(p)
    return p


def set_threads(n: int | None) -> None:
    """Limit Numba's and BLAS's threads for this process."""
    if n is None:
        return
    if n < 1:
        raise ValueError(f"--threads: expected an integer >= 1, got {n}")
    import numba

    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass


def default_out(config) -> Path:
    """runs/<data>-<preset or custom>-<YYYYmmdd-HHMMSS>."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{config.data}-{config.preset or 'custom'}-{stamp}"


def describe_data(splits) -> str:
    """One line: name, sizes, kind, scaling."""
    tr = splits.train
    kind = f"{tr.n_classes} classes" if tr.kind == "classification" else f"regression, {tr.n_outputs} output(s)"
    shape = f"images {tr.image_shape}" if tr.image_shape else f"{tr.n_features} features"
    scaling = tr.scaling["method"] + (f" by {tr.scaling['value']:g}" if tr.scaling["method"] == "divide" else "")
    n_tr, n_va, n_te = splits.sizes
    return f"data: {tr.name}, {shape}, {kind}; train/val/test {n_tr}/{n_va}/{n_te}; input scaling: {scaling}"


def describe_settings(trainer) -> str:
    c = trainer.config
    opt = c.optimizer + (f" μ={c.momentum:g}" if c.optimizer == "momentum" else "")
    batch = {"minibatch": f"minibatch {c.batch_size}", "sgd": "sgd (one example per step)",
             "fullbatch": "full batch"}[c.mode]
    wd = f", weight decay {c.weight_decay:g}" if c.weight_decay else ""
    aug = "" if trainer.augmenter is None else f", distortions {trainer.augmenter.spec()}"
    return (f"training: {opt}, lr {c.lr:g} ({c.schedule}){wd}, {batch}, {trainer.steps_per_epoch} steps/epoch, "
            f"{c.epochs} epochs, engine {c.engine}, {c.dtype}, seed {c.seed}{aug}")


def execute(trainer, *, quiet: bool, plots: bool, started: float) -> int:
    """Run a prepared trainer to the end and report; the shared body of train and demo."""
    from indexnet.train.metrics import format_metrics
    from indexnet.train.trainer import TrainingDiverged, write_history

    say = print
    resumed = trainer.epoch > 0
    say(describe_data(trainer.splits))
    say(trainer.net.summary())
    say(describe_settings(trainer))
    if resumed:
        say(f"resuming after epoch {trainer.epoch} (step {trainer.step}) from {trainer.checkpoint_path}")
    say(f"output: {trainer.out}")
    sys.stdout.flush()
    try:
        trainer.fit()
    except TrainingDiverged as exc:
        print(f"indexnet train: {exc}", file=sys.stderr)
        if trainer.history:
            write_history(trainer.history, trainer.out)
        return 3
    except KeyboardInterrupt:
        print(f"\ninterrupted during epoch {trainer.epoch + 1}; continue with: "
              f"indexnet train --resume {trainer.checkpoint_path}", file=sys.stderr)
        return 130
    test = trainer.evaluate("test")
    written = trainer.save_outputs(test, plots=plots)
    best = trainer.best or {}
    if "accuracy" in test:
        say(f"test accuracy: {100 * test['accuracy']:.2f}%  (test error {100 * (1 - test['accuracy']):.2f}%, "
            f"loss {test['loss']:.4f}, {test['n']} examples)")
    else:
        say(format_metrics("test", test) + f"  ({test['n']} examples)")
    if best:
        key = "val_acc" if "val_acc" in best else "val_loss"
        value = f"{100 * best[key]:.2f}%" if key == "val_acc" else f"{best[key]:.4g}"
        say(f"best validation {key.replace('val_', '')}: {value} at epoch {best['epoch']} (saved as best.npz)")
    seconds = [r["seconds"] for r in trainer.history]
    say(f"time: {time.perf_counter() - started:.1f} s in all, {sum(seconds) / max(len(seconds), 1):.3f} s per "
        f"epoch of training (mean over {len(seconds)})")
    say("wrote: " + ", ".join(str(p) for p in [trainer.checkpoint_path, *written.values()]))
    return 0


def run(args) -> int:
    started = time.perf_counter()
    from indexnet.nn.spec import SpecError
    from indexnet.train.trainer import RESUME_OVERRIDES, Trainer, resolve_config

    options = {k: getattr(args, k) for k in CONFIG_OPTIONS}
    try:
        set_threads(args.threads)
        if args.resume:
            given = sorted(k for k, v in options.items() if v is not None and k not in RESUME_OVERRIDES)
            given += ["preset"] if args.preset else []
            if given:
                raise ValueError(
                    "--resume: the run continues with its stored configuration; drop "
                    + ", ".join("--" + g.replace("_", "-") for g in given)
                )
            trainer = Trainer.resume(args.resume, out=args.out, log=None if args.quiet else print,
                                     progress=False if args.quiet else None,
                                     **{k: options[k] for k in RESUME_OVERRIDES})
        else:
            config = resolve_config(args.preset, **options)
            out = Path(args.out) if args.out else default_out(config)
            if (out / "checkpoint.npz").exists():
                raise ValueError(f"--out: {out} already holds a run (checkpoint.npz); continue it with "
                                 f"--resume {out / 'checkpoint.npz'} or choose another --out")
            trainer = Trainer(config, out=out, log=None if args.quiet else print,
                              progress=False if args.quiet else None)
    except (ValueError, TypeError, FileNotFoundError, SpecError) as exc:
        print(f"indexnet train: error: {exc}", file=sys.stderr)
        return 2
    return execute(trainer, quiet=args.quiet, plots=not args.no_plots, started=started)
