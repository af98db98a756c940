"""``indexnet train``: train a network and report its test accuracy.

With no options it trains seed 001's kind of network (one 800-unit ReLU layer,
softmax, cross-entropy; 64-800-10 on the 64 pixels) on the embedded 8x8 digits and
reports its test accuracy. Every option left out comes from the preset (--preset, or
the data set's default preset); every option given overrides only itself.
--show-config prints the resolved settings and where each came from.
"""
from __future__ import annotations

from indexnet.cli import plain_text

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
    "val_size": (int, "mnist/fashion: validation images from the end of the training file (default 5000 when "
                      "it holds 50000 or more, else 10 %%; 0: train on all of them, no validation)"),
    "val_fraction": (float, "fraction of the examples (mnist/fashion: of the training file) held out for "
                            "validation (default 0.1)"),
    "test_fraction": (float, "digits, square, sphere, csv: fraction of the examples held out for the test "
                             "(default 0.2)"),
    "layers": (str, "layers, e.g. 800:relu,10:softmax or conv8@3x3/p1:relu,maxpool2,10:softmax"),
    "loss": (str, "mse, half_se, euclidean, cross_entropy, binary_cross_entropy; with --layers and no --loss: "
                  "from the output activation (softmax: cross_entropy, sigmoid: binary_cross_entropy, else mse)"),
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
    "engine": (str, "fast (Numba kernels, fastmath build), loops (Numba, exact build) or numpy"),
    "dtype": (str, "float32 or float64"),
    "eval_batch_size": (int, "examples per forward pass when evaluating"),
    "checkpoint_every": (int, "also write checkpoint.npz every this many epochs (it is always written at the "
                              "end, on Ctrl-C, and after an epoch ending a minute after the last write)"),
    "log_every": (int, "print a metrics line every this many epochs (default: a tenth of --epochs)"),
    "train_eval_every": (int, "also measure the training accuracy (or RMSE), a pass over the training set, every "
                              "this many epochs (default: only after the logged epochs; the validation metrics "
                              "are measured after every epoch)"),
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
    "engine": ("fast", "loops", "numpy"),
    "dtype": ("float32", "float64"),
    "loss": ("mse", "half_se", "euclidean", "cross_entropy", "binary_cross_entropy"),
}


def default_help(dest: str) -> str:
    """`` (default: X with preset digits (the default); Y with seed001, ...; Z without a preset (csv))``.

    The true default of every preset, grouped by value, the default data set's first.
    """
    from dataclasses import fields

    from indexnet.train.presets import DATA_PRESETS, PRESETS
    from indexnet.train.trainer import TrainConfig

    if dest in ("log_every", "checkpoint_every", "data", "train_eval_every"):
        return ""
    builtin = {f.name: f.default for f in fields(TrainConfig)}.get(dest)
    first = DATA_PRESETS[TrainConfig.data]
    by_value: dict[str, list[str]] = {}
    for p in sorted(PRESETS.values(), key=lambda p: p.name != first):
        value = {"layers": p.layers, "loss": p.loss, **p.settings}.get(dest, builtin)
        label = f"{p.name} (the default)" if p.name == first else p.name
        by_value.setdefault(str(value), []).append(label)
    if builtin is not None or dest in ("layers", "loss"):
        shown = {"layers": "64:relu and an output layer sized to the data",
                 "loss": "from the output activation"}.get(dest, str(builtin))
        by_value.setdefault(shown, []).append("no preset (--data csv)")
    if len(by_value) == 1:
        return f" (default {next(iter(by_value))})"
    parts = [f"{value} with {', '.join(names)}" for value, names in by_value.items()]
    return " (default: " + "; ".join(parts) + ")"


def add_common_options(p: argparse.ArgumentParser, names) -> None:
    """Add the config options ``names`` (all default None: unset means preset / default)."""
    for dest in names:
        typ, help_text = CONFIG_OPTIONS[dest]
        p.add_argument("--" + dest.replace("_", "-"), dest=dest, type=typ, default=None,
                       choices=CHOICES.get(dest), help=(help_text + default_help(dest)).replace("%", "%%"))


def add_output_options(p: argparse.ArgumentParser) -> None:
    """--out, --quiet, --no-plots, --threads."""
    p.add_argument("--out", default=None, help="output folder (default runs/<data>-<preset>-<time>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch lines")
    p.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for Numba and BLAS (default: all cores)")


def add_parser(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=plain_text(__doc__.split("\n\n")[1]))
    p.add_argument("--preset", default=None, help=preset_help())
    p.add_argument("--show-config", action="store_true",
                   help="print the resolved configuration and where each value came from (built-in default, "
                        "the data set's preset, --preset, command line), then exit")
    add_common_options(p, CONFIG_OPTIONS)
    p.add_argument("--resume", default=None, metavar="RUN",
                   help="continue a run (its folder or checkpoint.npz) exactly as if it had never stopped; with "
                        "--epochs N (more than the run has) extend it, the learning-rate schedule keeping its "
                        "original length; a finished run without a larger --epochs trains nothing and says so")
    add_output_options(p)
    return p


def preset_help() -> str:
    """One phrase per preset: its name, data set and whether a data set starts it."""
    from indexnet.train.presets import DATA_PRESETS, PRESETS

    starts: dict[str, list[str]] = {}
    for data, name in DATA_PRESETS.items():
        starts.setdefault(name, []).append(data)
    parts = []
    for p in PRESETS.values():
        extra = f", default for --data {'/'.join(starts[p.name])}" if p.name in starts else ""
        parts.append(f"{p.name} ({p.layers} on {'/'.join(p.datasets)}{extra})")
    return ("a named network with its settings and data set: " + "; ".join(parts)
            + ". Options given override only themselves")


def others_running(samples: int = 3) -> int | None:
    """How many processes other than this one are running now: the smallest of a few samples,
    2 ms apart, of the running count in ``/proc/loadavg`` (so a process passing by is not
    counted), minus this one; None where that file does not exist."""
    try:
        counts = []
        for k in range(samples):
            if k:
                time.sleep(0.002)
            with open("/proc/loadavg", encoding="ascii") as f:
                counts.append(int(f.read().split()[3].split("/")[0]))
    except (OSError, ValueError, IndexError):
        return None
    return max(min(counts) - 1, 0)


def passive_workers_when_busy(environ=None) -> str | None:
    """On a busy machine let OpenMP's waiting workers sleep instead of spin; returns a note saying so, or None.

    Numba's parallel kernels run on OpenMP, whose workers spin while they wait for the next
    parallel region. When the cores are shared with other running processes, the spinning
    workers take the cores the working ones need and each region waits for a worker that is
    not running: a digits run measured 88 s wall and 37 s CPU at load average 9.6 on 2 cores,
    against 14 s and 4.4 s with ``OMP_WAIT_POLICY=passive``; with one other busy process on 2
    cores (load average 1.4-2.4), 4 of 10 digits runs had epochs ten times slower with
    spinning workers, 0 of 5 with passive ones. So when the 1-minute load average is at
    least the number of cores, or another process is running now (:func:`others_running`;
    the trainer's threads take every core), this sets ``OMP_WAIT_POLICY=passive`` (before
    OpenMP starts), unless the environment already chooses a policy. A machine with nothing
    else running keeps OpenMP's default, which is the faster there.
    """
    import os

    env = os.environ if environ is None else environ
    if "OMP_WAIT_POLICY" in env or not hasattr(os, "getloadavg"):
        return None
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load >= cores:
        why = f"load average {load:.1f} on {cores} cores"
    else:
        others = others_running()
        if not others:
            return None
        why = f"{others} other running process{'es' if others > 1 else ''} on {cores} cores"
    env["OMP_WAIT_POLICY"] = "passive"
    return (f"note: {why}: waiting threads sleep instead of spinning "
            f"(OMP_WAIT_POLICY=passive; set OMP_WAIT_POLICY to choose)")


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


def compile_notice(trainer, say) -> None:
    """Compile (or load from Numba's cache) the kernels, saying so with the elapsed time.

    Printed on a terminal and off it: on a first run compiling takes tens of seconds and
    the progress bar would otherwise sit at 0.
    """
    print("compiling the kernels (first run only; Numba caches them) ...", end=" ", flush=True)
    seconds = trainer.warm_up()
    print(f"ready in {seconds:.1f} s", flush=True)


def interrupted(trainer, command: str = "indexnet train") -> int:
    """Report a Ctrl-C: what is kept and how to continue. Exit code 130."""
    ck = trainer.checkpoint_path
    done = trainer.epoch
    if ck is not None and ck.exists() and done > 0:
        print(f"\ninterrupted during epoch {done + 1}; {ck} holds the state after epoch {done}. "
              f"Continue with: {command} --resume {ck}", file=sys.stderr)
    else:
        print(f"\ninterrupted during epoch {done + 1}, before any epoch completed: no checkpoint to resume; "
              f"run the command again", file=sys.stderr)
    return 130


def execute(trainer, *, quiet: bool, plots: bool, started: float, command: str = "indexnet train") -> int:
    """Run a prepared trainer to the end and report; the shared body of train and demo."""
    from indexnet.train.metrics import format_metrics
    from indexnet.train.trainer import TrainingDiverged, write_history

    say = print
    resumed = trainer.epoch > 0
    say(describe_data(trainer.splits))
    say(trainer.net.summary())
    say(describe_settings(trainer))
    if resumed:
        say(describe_resume(trainer))
    say(f"output: {trainer.out}")
    sys.stdout.flush()
    try:
        if trainer.epoch < trainer.config.epochs:
            compile_notice(trainer, say)
        trainer.fit()
    except TrainingDiverged as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        if trainer.history:
            write_history(trainer.history, trainer.out)
        return 3
    except KeyboardInterrupt:
        return interrupted(trainer, command)
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
        if best[key] != best[key]:  # NaN: trained without a validation split
            say(f"no validation split: best.npz is the last epoch ({best['epoch']})")
        else:
            say(f"best validation {key.replace('val_', '')}: {value} at epoch {best['epoch']} (saved as best.npz)")
    seconds = trainer.session_seconds
    if seconds:
        say(f"time: {time.perf_counter() - started:.1f} s in all, {sum(seconds) / len(seconds):.3f} s per "
            f"epoch of training (mean over the {len(seconds)} epochs of this run)")
    say("wrote: " + ", ".join(str(p) for p in [trainer.checkpoint_path, *written.values()]))
    return 0


def describe_resume(trainer) -> str:
    """What a resume does: continue, extend (schedule kept), or nothing (finished)."""
    c, done = trainer.config, trainer.epoch
    span = c.schedule_epochs or c.epochs
    text = f"resuming after epoch {done} (step {trainer.step}) from {trainer.checkpoint_path}"
    if done >= c.epochs:
        return (f"{text}: the run has finished all {c.epochs} epochs, so nothing is trained; the test figures "
                f"below are the final model's. To train further give --epochs N with N > {c.epochs}")
    if c.epochs > span:
        lr = trainer.schedule.lr_at(span * trainer.steps_per_epoch)
        rule = {"cosine": f"stays at its final rate {lr:.3g} (lr-min)", "step": "keeps decaying every step",
                "constant": f"stays at {c.lr:g}"}[c.schedule]
        return (f"{text}; extending the run to {c.epochs} epochs: the {c.schedule} schedule keeps its length of "
                f"{span} epochs, so after epoch {span} the rate {rule}")
    return f"{text}; training epochs {done + 1} to {c.epochs}"


def run(args) -> int:
    started = time.perf_counter()
    note = passive_workers_when_busy()  # before any parallel kernel starts OpenMP
    if note and not args.show_config:
        print(note)
    from indexnet.nn.spec import SpecError
    from indexnet.train.trainer import RESUME_OVERRIDES, Trainer, format_config, resolve_config_sources

    options = {k: getattr(args, k) for k in CONFIG_OPTIONS}
    for key in ("csv", "data_dir"):  # stored resolved, so eval finds the data from any folder
        if options[key]:
            options[key] = str(Path(options[key]).expanduser().resolve())
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
            if args.show_config:
                given = {k for k in RESUME_OVERRIDES if options[k] is not None}
                sources = {k: ("command line" if k in given else f"checkpoint {args.resume}")
                           for k in trainer.config.to_dict()}
                print(format_config(trainer.config, sources, options=CONFIG_OPTIONS))
                return 0
        else:
            config, sources = resolve_config_sources(args.preset, **options)
            if args.show_config:
                print(format_config(config, sources, options=CONFIG_OPTIONS))
                return 0
            out = Path(args.out) if args.out else default_out(config)
            created = check_out(out)
            try:
                trainer = Trainer(config, out=out, log=None if args.quiet else print,
                                  progress=False if args.quiet else None)
            except BaseException:
                if created and not any(out.iterdir()):
                    out.rmdir()  # leave nothing behind for a run that never started
                raise
    except (ValueError, TypeError, FileNotFoundError, SpecError) as exc:
        print(f"indexnet train: error: {exc}", file=sys.stderr)
        return 2
    return execute(trainer, quiet=args.quiet, plots=not args.no_plots, started=started)


def check_out(out: Path) -> bool:
    """``--out`` is a folder that can be created and written, and holds no run yet; True if it was created.

    Raises
    ------
    ValueError
        It is a file, lies below a file, is not writable, or already holds checkpoint.npz.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: expected a folder for the run's files, got {out}, which is an existing file")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"--out: {out} lies below {parent}, which is a file, not a folder")
            break
    if (out / "checkpoint.npz").exists():
        raise ValueError(f"--out: {out} already holds a run (checkpoint.npz); continue it with "
                         f"--resume {out / 'checkpoint.npz'} or choose another --out")
    import tempfile

    created = not out.exists()
    missing = [out] + [p for p in out.parents if not p.exists()]  # the folders mkdir will create
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        for folder in missing:  # leave nothing behind
            try:
                folder.rmdir()
            except OSError:
                break
        raise ValueError(f"--out: cannot write to {out} ({exc.strerror or exc})") from exc
    return created
