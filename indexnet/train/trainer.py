"""The trainer: epochs, batches, progress, metrics, checkpoints.

:class:`TrainConfig` holds every choice of a run as plain JSON values;
:class:`Trainer` owns the loop::

    cfg = resolve_config(data="digits")            # seed 001's net, scaled to 64 inputs
    trainer = Trainer(cfg, out="runs/digits")
    trainer.fit()                                   # checkpoints every epoch
    print(trainer.evaluate("test"))
    trainer.save_outputs()                          # model.npz, history, plots

Modes (``mode``)
    ``minibatch``  shuffled epochs: a permutation of the training set cut into batches of
                   ``batch_size`` (the last one smaller when it does not divide N);
    ``sgd``        seed 002's Algorithm 1: each step draws one example j uniformly from
                   1..N (with replacement) and takes θ ← θ − α ∇J^(j); an epoch is
                   ``steps_per_epoch`` such steps (default N);
    ``fullbatch``  gradient descent on the whole training set, seed 000's eq. 3 with its
                   sign corrected (θ ← θ − μ ∂J/∂θ); an epoch is ``steps_per_epoch``
                   steps (default 1).

Engines (``engine``)
    ``fast`` (the default) runs the Numba kernels' fastmath build (via
    :func:`indexnet.train.step.make_train_step`), ``loops`` the exact, deterministic
    build of the same loops, ``numpy`` the vectorized NumPy forms
    (:mod:`indexnet.nn.engine`). The per-epoch evaluation uses the training engine
    (with ``fast``, the step's own kernels: :func:`indexnet.train.metrics.fast_forward`).

Metrics of an epoch
    ``train_loss`` is the running mean of the epoch's step losses (the parameters move
    during the epoch). The validation loss and accuracy (or RMSE) are measured after
    every epoch: they choose the best epoch. The training accuracy (or RMSE) is a
    second pass over up to ``train_eval_size`` training examples, as costly as the
    epoch's own forward passes, so it is measured only after the logged epochs (or
    every ``train_eval_every`` epochs); the history leaves it empty for the others.

Checkpoints and interruption
    ``checkpoint_every`` None (the default) writes ``checkpoint.npz`` at the end of the
    run, after any epoch that ends a minute or more after the last write, and when the
    run is interrupted (Ctrl-C: the state of the last completed epoch, kept in memory);
    an integer N writes it every N epochs as well. ``fit`` turns SIGINT into a flag that
    is checked between steps, so a Ctrl-C that lands inside a compiled kernel stops the
    run cleanly after that step.

Extending a run
    :meth:`Trainer.resume` with a larger ``epochs`` trains the extra epochs and keeps the
    learning-rate schedule laid out over the original run (``schedule_epochs``): a
    cosine schedule stays at ``lr_min`` after its end, a step schedule keeps decaying
    every ``step_size`` epochs, a constant rate stays. The rate never jumps back up.

Reproducibility
    The initial weights come from ``seed``, the batches from a
    ``numpy.random.default_rng([seed, 1])`` Generator that nothing else draws from
    except the distortions of ``augment`` (drawn per batch, after the epoch's order).
    Every checkpoint stores the parameters, the optimiser's state, that Generator's
    state, the epoch and step counts, the history and this configuration, so
    :meth:`Trainer.resume` continues exactly as if the run had never stopped (timings
    aside).

Divergence
    The loss of every step is checked; the first NaN or Inf stops the run with
    :class:`TrainingDiverged`, naming the epoch and step. Checkpoints are written only at
    the end of an epoch whose parameters and losses are all finite, so the last
    checkpoint is always a good one.
"""
from __future__ import annotations

import csv
import io as _io
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from indexnet._validate import check_choice, check_positive_int, check_real
from indexnet.train.metrics import evaluate, per_example

__all__ = ["TrainConfig", "Trainer", "TrainingDiverged", "resolve_config", "load_splits", "MODES", "ENGINE_MAP",
           "DATASETS", "write_history"]

MODES = ("minibatch", "sgd", "fullbatch")
#: trainer engine -> kernel engine of :mod:`indexnet.nn.engine`
ENGINE_MAP = {"fast": "fast", "loops": "loops", "numpy": "numpy"}
ENGINES = tuple(ENGINE_MAP)
DATASETS = ("digits", "mnist", "fashion", "square", "sphere", "csv")
#: options that may differ on --resume without changing what is computed
RESUME_OVERRIDES = ("epochs", "log_every", "checkpoint_every", "eval_batch_size", "train_eval_every")
#: seconds between checkpoints when ``checkpoint_every`` is None
CHECKPOINT_SECONDS = 60.0

CHECKPOINT_FILE = "checkpoint.npz"
BEST_FILE = "best.npz"
MODEL_FILE = "model.npz"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or Inf; the message names the epoch and step.

    Attributes
    ----------
    epoch, step : int
        Where it happened (epoch counted from 1, step within the epoch from 1).
    checkpoint : Path or None
        The last good checkpoint (from the end of the last finite epoch), if any.
    """

    def __init__(self, message: str, epoch: int, step: int, checkpoint: Path | None):
        super().__init__(message)
        self.epoch, self.step, self.checkpoint = epoch, step, checkpoint


# ------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class TrainConfig:
    """Every choice of a training run, as JSON values (stored in each checkpoint).

    Attributes
    ----------
    data : str
        ``digits``, ``mnist``, ``fashion``, ``square``, ``sphere`` or ``csv``.
    data_dir : str or None
        Folder of the four IDX files (mnist, fashion).
    csv : str or None
        Path of the CSV file (data ``csv``); ``target`` names its target column(s) by
        index or header name, ``task`` is ``classification`` or ``regression``.
    split_seed : int
        Seed of the train / validation / test split (fixed by default, so test figures
        of different ``seed`` compare).
    val_size, val_fraction, test_fraction : int, float, float or None
        The validation set's size (MNIST-format sets: images from the end of the
        training file) or fraction, and the test fraction (not for MNIST-format sets,
        which test on their t10k file); None: the loader's default. ``val_size`` 0 or
        ``val_fraction`` 0 trains on every training example: no validation metrics (NaN in
        the history) and the best epoch is the last.
    preset : str or None
        The preset the settings came from (informational).
    layers : str or None
        ``--layers`` spec; None: one hidden layer of 64 ReLU units and an output layer
        sized to the data.
    loss : str or None
        None: from the output activation (softmax -> cross_entropy, sigmoid ->
        binary_cross_entropy, else mse).
    optimizer, lr, momentum, beta1, beta2, eps, weight_decay
        ``sgd``, ``momentum`` or ``adam`` and its hyperparameters; ``weight_decay`` is
        L2 on weights and kernels, not biases.
    schedule, step_size, gamma, lr_min
        ``constant``, ``step`` (× ``gamma`` every ``step_size`` epochs, default a third
        of the run) or ``cosine`` (to ``lr_min`` at the last step).
    schedule_epochs : int or None
        The epochs the schedule is laid out over; None: ``epochs``. Set by a resume that
        extends a run, so the extra epochs continue the schedule instead of re-spreading it.
    mode, batch_size, steps_per_epoch, epochs
        See the module docstring.
    seed : int
        Seed of the initial weights and of the batch Generator.
    engine : str
        ``fast`` (Numba, fastmath build), ``loops`` (Numba, exact build) or ``numpy``.
    dtype : str
        ``float32`` or ``float64``.
    eval_batch_size : int
        Examples per forward pass when evaluating.
    train_eval_size : int
        The training accuracy (or RMSE) is measured on the first this many training
        examples (the training loss is the running mean of the epoch's step losses).
    train_eval_every : int or None
        Measure the training accuracy (or RMSE) after every this many epochs; None (the
        default): after the epochs that are logged (``log_every``: the first, every
        tenth of the run, the last). It is also measured after every logged epoch when
        this is given. The history's ``train_acc`` / ``train_rmse`` is empty for the
        other epochs; the validation metrics are measured after every epoch.
    checkpoint_every : int or None
        Also write a checkpoint every this many epochs; None: see the module docstring.
    log_every : int or None
        Print a line every this many epochs (and after the first and the last); None:
        every ``ceil(epochs / 10)`` epochs.
    augment : str or None
        Random distortions of every training batch, ``affine[:rotate=R,shear=S,scale=Z,shift=T]``,
        ``elastic[:ALPHA,SIGMA]`` or both joined by ``+`` (:func:`indexnet.data.augment.parse_augment`,
        ``derivations/augment.md``); drawn from the batch Generator, image data only.
    """

    data: str = "digits"
    data_dir: str | None = None
    csv: str | None = None
    target: str = "-1"
    task: str = "classification"
    split_seed: int = 0
    val_size: int | None = None
    val_fraction: float | None = None
    test_fraction: float | None = None
    preset: str | None = None
    layers: str | None = None
    loss: str | None = None
    optimizer: str = "momentum"
    lr: float = 0.05
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    schedule: str = "cosine"
    step_size: int | None = None
    gamma: float = 0.1
    lr_min: float = 0.0
    mode: str = "minibatch"
    batch_size: int = 32
    steps_per_epoch: int | None = None
    epochs: int = 20
    schedule_epochs: int | None = None
    seed: int = 0
    engine: str = "fast"
    dtype: str = "float64"
    eval_batch_size: int = 1000
    train_eval_size: int = 10000
    train_eval_every: int | None = None
    checkpoint_every: int | None = None
    log_every: int | None = None
    augment: str | None = None

    def __post_init__(self) -> None:
        check_choice("--data", self.data, DATASETS)
        check_choice("--mode", self.mode, MODES)
        check_choice("--engine", self.engine, tuple(ENGINE_MAP))
        check_choice("--dtype", self.dtype, ("float32", "float64"))
        check_choice("--schedule", self.schedule, ("constant", "step", "cosine"))
        check_choice("--optimizer", self.optimizer, ("sgd", "momentum", "adam"))
        check_choice("--task", self.task, ("classification", "regression"))
        for name in ("batch_size", "epochs", "eval_batch_size", "train_eval_size"):
            check_positive_int(f"--{name.replace('_', '-')}", getattr(self, name))
        for name in ("seed", "split_seed"):
            check_positive_int(f"--{name.replace('_', '-')}", getattr(self, name), minimum=0)
        for name in ("steps_per_epoch", "step_size", "checkpoint_every", "log_every", "schedule_epochs",
                     "train_eval_every"):
            if getattr(self, name) is not None:
                check_positive_int(f"--{name.replace('_', '-')}", getattr(self, name))
        if self.mode == "minibatch" and self.steps_per_epoch is not None:
            raise ValueError(
                f"--steps-per-epoch: applies to --mode sgd or fullbatch; mode minibatch takes "
                f"ceil(N / batch size) steps per epoch, got --steps-per-epoch {self.steps_per_epoch}"
            )
        check_real("--lr", self.lr, lo=0, lo_open=True)
        if self.augment is not None:
            from indexnet.data.augment import parse_distortions

            parse_distortions(self.augment)  # syntax and ranges; that the data are images is checked with them
        if self.data in ("mnist", "fashion") and not self.data_dir:
            raise ValueError(f"--data-dir: expected the folder with the four IDX files for --data {self.data}, got none")
        if self.data == "csv" and not self.csv:
            raise ValueError("--csv: expected the path of a CSV file for --data csv, got none")
        if self.val_size is not None:
            check_positive_int("--val-size", self.val_size, minimum=0)
            if self.data not in ("mnist", "fashion"):
                raise ValueError(f"--val-size: applies to --data mnist or fashion; for --data {self.data} give "
                                 f"--val-fraction, got --val-size {self.val_size}")
            if self.val_fraction is not None:
                raise ValueError("--val-size, --val-fraction: expected one of them, got both")
        for name in ("val_fraction", "test_fraction"):
            if getattr(self, name) is not None:
                check_real(f"--{name.replace('_', '-')}", getattr(self, name), lo=0, hi=1, hi_open=True)
        if self.test_fraction is not None and self.data in ("mnist", "fashion"):
            raise ValueError(f"--test-fraction: --data {self.data} tests on its t10k files; got --test-fraction "
                             f"{self.test_fraction}")

    def to_dict(self) -> dict[str, Any]:
        """The configuration as a JSON-able dict."""
        return asdict(self)

    @property
    def log_cadence(self) -> int:
        """Epochs between log lines: ``log_every``, or ``ceil(epochs / 10)`` when it is None."""
        return self.log_every or max(1, -(-self.epochs // 10))

    def logged(self, epoch: int) -> bool:
        """Whether epoch ``epoch`` gets a log line: the first, the last, every :attr:`log_cadence`."""
        return epoch % self.log_cadence == 0 or epoch in (1, self.epochs)

    def measures_train(self, epoch: int) -> bool:
        """Whether the training accuracy (or RMSE) is measured after epoch ``epoch``: the logged
        epochs, and every ``train_eval_every`` epochs when it is given."""
        return self.logged(epoch) or (self.train_eval_every is not None and epoch % self.train_eval_every == 0)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Rebuild from :meth:`to_dict`; unknown keys are an error naming them."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"config: unknown keys {unknown}; expected some of {sorted(names)}")
        return cls(**d)


#: where a configuration value came from (see :func:`resolve_config_sources`)
SOURCE_DEFAULT = "built-in default"
SOURCE_OPTION = "command line"


def resolve_config_sources(preset: str | None = None, **options: Any) -> tuple[TrainConfig, dict[str, str]]:
    """A :class:`TrainConfig` from a preset and explicit options, and where each value came from.

    Order: the dataclass defaults, then the preset's data set, layers, loss and settings
    (the preset named, or the data set's default preset when none is named), then every
    option that is not None. Each option overrides only itself; the one coupling is
    ``layers`` without ``loss``: the loss then follows from the new output layer.
    A preset carries its data set: ``data`` must be one the preset was made for.

    Returns
    -------
    config : TrainConfig
    sources : dict
        Field name -> ``"built-in default"``, ``"data set's preset NAME"``,
        ``"--preset NAME"``, ``"command line"`` or ``"from --layers"``.

    Raises
    ------
    ValueError
        An unknown preset or option name, a ``data`` the preset is not for, or an
        invalid value (naming the option).
    """
    from indexnet.train.presets import get_preset, preset_for_data

    options = {k: v for k, v in options.items() if v is not None}
    names = [f.name for f in fields(TrainConfig)]
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise ValueError(f"options: unknown {unknown}; expected some of {sorted(names)}")
    if preset is not None:
        chosen = get_preset(preset, options.get("data"))
        label = f"--preset {chosen.name}"
    else:
        chosen = preset_for_data(options.get("data", TrainConfig.data))
        label = None if chosen is None else f"data set's preset {chosen.name}"
    values: dict[str, Any] = {}
    sources = {name: SOURCE_DEFAULT for name in names}
    if chosen is not None:
        values.update(data=chosen.data, layers=chosen.layers, loss=chosen.loss, preset=chosen.name, **chosen.settings)
        sources.update({k: label for k in values})
    values.update(options)
    sources.update({k: SOURCE_OPTION for k in options})
    if "layers" in options and "loss" not in options:
        values["loss"] = None  # the preset's loss belongs to the preset's layers
        sources["loss"] = "from --layers (its output activation)"
    return TrainConfig(**values), sources


def resolve_config(preset: str | None = None, **options: Any) -> TrainConfig:
    """A :class:`TrainConfig` from a preset and explicit options; see :func:`resolve_config_sources`."""
    return resolve_config_sources(preset, **options)[0]


def format_config(config: TrainConfig, sources: dict[str, str] | None = None, options=None) -> str:
    """The configuration as aligned ``name  value  source`` lines; the fields in ``options`` (the
    command line's) are named as options (``--batch-size``), the others by their field name."""
    rows = []
    for f in fields(TrainConfig):
        value = getattr(config, f.name)
        if f.name == "loss" and value is None and config.layers:
            value = f"{infer_loss(config.layers)} (from the output layer)"
        elif f.name == "log_every" and value is None:
            value = f"{config.log_cadence} (every tenth of the run)"
        elif f.name == "train_eval_every" and value is None:
            value = "at the logged epochs (--log-every)"
        elif f.name == "checkpoint_every" and value is None:
            value = f"at the end, on Ctrl-C, and every {CHECKPOINT_SECONDS:g} s"
        elif f.name == "schedule_epochs" and value is None:
            value = f"{config.epochs} (= --epochs)"
        name = "--" + f.name.replace("_", "-") if options is None or f.name in options else f.name
        rows.append((name, "-" if value is None else str(value),
                     (sources or {}).get(f.name, "")))
    w0, w1 = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{w0}}  {b:<{w1}}  {c}".rstrip() for a, b, c in rows)


def infer_loss(layers_spec: str) -> str:
    """The natural loss of a spec's output activation."""
    act = layers_spec.rsplit(",", 1)[-1].rsplit(":", 1)[-1].strip().lower()
    return {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy"}.get(act, "mse")


#: library argument names -> the command-line options that set them (for error messages)
CLI_NAMES = {
    "val_fraction + test_fraction": "--val-fraction + --test-fraction", "target_columns": "--target",
    "data_dir": "--data-dir", "val_size": "--val-size", "val_fraction": "--val-fraction",
    "test_fraction": "--test-fraction", "csv file": "--csv", "kind='regression'": "--task regression",
    "kind": "--task", "n_classes=": "a label column of the real classes",
}


def cli_message(text: str) -> str:
    """``text`` with the library's argument names replaced by the CLI options that set them."""
    import re

    pattern = "|".join(re.escape(k) for k in sorted(CLI_NAMES, key=len, reverse=True))
    return re.sub(rf"(?<![\w-])({pattern})(?![\w])", lambda m: CLI_NAMES[m.group(1)], text)


def load_splits(config: TrainConfig, scaling: dict | None = None):
    """The data set a configuration names, split and in its dtype.

    ``scaling`` (a stored record, at evaluation time) replaces the scaling a CSV file
    would compute from its training split; the other sets have a fixed scaling.

    Raises
    ------
    ValueError, FileNotFoundError
        From the loader, with its argument names replaced by the command-line options
        (``--data-dir``, ``--val-size``, ``--target`` ...); also an empty split.
    """
    from indexnet import data as D

    dtype = np.dtype(config.dtype)
    opts = {k: getattr(config, k) for k in ("val_fraction", "test_fraction") if getattr(config, k) is not None}
    try:
        if config.data in ("mnist", "fashion"):
            splits = D.load_mnist(config.data_dir, config.data, dtype=dtype, val_size=config.val_size,
                                  val_fraction=config.val_fraction)
        elif config.data == "csv":
            target: Any = int(config.target) if config.target.lstrip("-").isdigit() else config.target
            splits = D.load_csv(config.csv, target_columns=target, kind=config.task, seed=config.split_seed,
                                scaling=scaling, dtype=dtype, **opts)
        else:
            splits = D.load(config.data, seed=config.split_seed, dtype=dtype, **opts)
    except FileNotFoundError as exc:
        raise FileNotFoundError(cli_message(str(exc))) from None
    except ValueError as exc:
        raise ValueError(cli_message(str(exc))) from None
    no_validation = config.val_size == 0 or config.val_fraction == 0  # asked for: train on every example
    for part, ds in zip(("training", "validation", "test"), (splits.train, splits.validation, splits.test)):
        if ds.n_samples == 0 and not (part == "validation" and no_validation):
            mnist = config.data in ("mnist", "fashion")
            hint = {"training": "--val-fraction / --test-fraction or --val-size",
                    "validation": "--val-size" if mnist else "--val-fraction",
                    "test": "the t10k files" if mnist else "--test-fraction"}[part]
            raise ValueError(f"--data {config.data}: the {part} split is empty (0 examples); check {hint}")
    return splits


def data_meta(config: TrainConfig, splits) -> dict[str, Any]:
    """What a model file records about its data: the source, the split and the scaling."""
    train = splits.train
    return {
        "name": train.name, "kind": train.kind, "scaling": train.scaling, "n_classes": train.n_classes,
        "image_shape": None if train.image_shape is None else list(train.image_shape),
        "n_features": train.n_features, "n_outputs": train.n_outputs, "split": splits.info,
        "class_names": splits.info.get("class_names"),
        "source": {k: getattr(config, k) for k in ("data", "data_dir", "csv", "target", "task", "split_seed")},
    }


# ------------------------------------------------------------------------------ trainer
class Trainer:
    """Trains one network on one data set; see the module docstring.

    Parameters
    ----------
    config : TrainConfig
    splits : indexnet.data.Splits, optional
        The data; default: loaded from ``config`` with :func:`load_splits`.
    out : path-like, optional
        Folder for checkpoints and outputs; None writes nothing.
    log : callable, optional
        Receives the per-epoch lines (default ``print``); None for silence.
    progress : bool, optional
        Show a tqdm bar per epoch; default: when stdout is a terminal.
    net : Network, optional
        Start from these parameters instead of a fresh initialisation; its layers, loss
        and dtype must be the ones ``config`` describes.

    Attributes
    ----------
    net : Network
    optimizer : indexnet.nn.optim.Optimizer
    schedule : indexnet.nn.optim.Schedule
    rng : numpy.random.Generator
        The batch Generator.
    epoch, step : int
        Epochs and optimisation steps completed.
    history : list of dict
        One record per epoch: ``epoch``, ``step``, ``lr``, ``train_loss``, ``val_loss``,
        ``train_acc``/``val_acc`` (classification) or ``train_rmse``/``val_rmse``,
        ``seconds`` (training time of the epoch) and ``eval_seconds``. ``train_acc`` /
        ``train_rmse`` only after the epochs :meth:`TrainConfig.measures_train` names.
    """

    def __init__(self, config: TrainConfig, *, splits=None, out=None, log: Callable[[str], Any] | None = print,
                 progress: bool | None = None, net=None):
        from indexnet.nn.network import Network
        from indexnet.nn.spec import build_layers

        self.config = config
        self.splits = load_splits(config) if splits is None else splits.astype(config.dtype)
        train = self.splits.train
        layers_spec = config.layers or self._default_layers()
        self.loss_name = config.loss or infer_loss(layers_spec)
        layers, input_shape = build_layers(layers_spec, train.n_features, train.image_shape, train.n_outputs)
        self.layers_spec = layers_spec
        if net is None:
            check_memory(layers, input_shape, config, layers_spec)
        if net is None:
            net = Network(layers, input_shape, self.loss_name, dtype=np.dtype(config.dtype), seed=config.seed)
        else:
            want = ([l.to_config() for l in layers], input_shape, self.loss_name, np.dtype(config.dtype))
            got = ([l.to_config() for l in net.layers], net.input_shape, net.loss_fn.name, net.dtype)
            if want != got:
                raise ValueError(f"net: expected the network the configuration describes "
                                 f"({layers_spec}, {self.loss_name}, {config.dtype}), got {net!r}")
        self.net = net
        self.engine = ENGINE_MAP[config.engine]
        self.out = None if out is None else Path(out)
        self.log = log
        self.progress = sys.stdout.isatty() if progress is None else bool(progress)
        self.rng = np.random.default_rng([config.seed, 1])
        self.epoch = 0
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self._best_params: list | None = None  # parameters of a best epoch not yet written to best.npz
        self.session_seconds: list[float] = []  # training seconds of the epochs this process ran
        self._stop = False
        self._snapshot: tuple | None = None
        self._checkpoint_time = time.perf_counter()
        self.optimizer = self._make_optimizer()
        self.schedule = self._make_schedule()
        from indexnet.train.step import make_train_step

        self._step = make_train_step(self.net, self.optimizer, self.engine, defer_sync=True)
        # kept apart from _step, so that a wrapper around the step (tests, callers timing it) still syncs
        self._sync = self._step.sync
        # private, writable, C-contiguous copies (Dataset arrays are read-only views)
        self._X = np.array(train.X, order="C", copy=True)
        self._T = np.array(train.T, order="C", copy=True)
        from indexnet.data.augment import parse_augment

        self.augmenter = parse_augment(config.augment, train.image_shape)

    # -------------------------------------------------------------------- construction
    def _default_layers(self) -> str:
        train = self.splits.train
        out_act = "softmax" if train.kind == "classification" else "identity"
        return f"64:relu,{train.n_outputs}:{out_act}"

    def _make_optimizer(self):
        from indexnet.nn.optim import make_optimizer

        c = self.config
        kw: dict[str, Any] = {"lr": c.lr, "weight_decay": c.weight_decay, "engine": self.engine}
        if c.optimizer == "momentum":
            kw["mu"] = c.momentum
        elif c.optimizer == "adam":
            kw.update(beta1=c.beta1, beta2=c.beta2, eps=c.eps)
        return make_optimizer(c.optimizer, **kw)

    @property
    def n_train(self) -> int:
        return self.splits.train.n_samples

    @property
    def steps_per_epoch(self) -> int:
        """Optimisation steps in one epoch."""
        c = self.config
        if c.mode == "minibatch":
            return -(-self.n_train // c.batch_size)
        if c.mode == "sgd":
            return c.steps_per_epoch or self.n_train
        return c.steps_per_epoch or 1

    def _make_schedule(self):
        from indexnet.nn.optim import make_schedule

        c = self.config
        span = c.schedule_epochs or c.epochs
        if c.schedule == "step":
            every = c.step_size or max(1, span // 3)
            return make_schedule("step", lr=c.lr, step_size=every * self.steps_per_epoch, gamma=c.gamma)
        if c.schedule == "cosine":
            return make_schedule("cosine", lr=c.lr, total_steps=span * self.steps_per_epoch, lr_min=c.lr_min)
        return make_schedule("constant", lr=c.lr)

    @classmethod
    def resume(cls, checkpoint, *, splits=None, out=None, log=print, progress=None, **overrides) -> "Trainer":
        """A trainer in exactly the state stored in ``checkpoint``.

        Parameters
        ----------
        checkpoint : path-like
            A ``checkpoint.npz`` of an earlier run, or its run folder.
        splits : Splits, optional
            The data (default: reloaded from the stored configuration).
        out : path-like, optional
            Output folder; default the checkpoint's folder.
        **overrides
            ``epochs`` (extend the run: the schedule keeps the length of the original
            run, ``schedule_epochs``, see the module docstring; fewer epochs than are
            done is an error), ``log_every``, ``checkpoint_every``, ``eval_batch_size``.

        Raises
        ------
        ValueError
            Not a checkpoint, a checkpoint without the optimiser arrays its optimiser
            needs, fewer ``epochs`` than are done, or an override that would change what
            is computed.
        """
        from indexnet.train.checkpoint import load_checkpoint

        path = Path(checkpoint)
        if path.is_dir():
            path = path / CHECKPOINT_FILE
        ck = load_checkpoint(path)
        overrides = {k: v for k, v in overrides.items() if v is not None}
        bad = sorted(set(overrides) - set(RESUME_OVERRIDES))
        if bad:
            raise ValueError(
                f"--resume: options {bad} cannot change when resuming (the run continues with its stored "
                f"configuration); only {list(RESUME_OVERRIDES)} can"
            )
        stored = TrainConfig.from_dict(ck.config)
        if overrides.get("epochs", ck.epoch) < ck.epoch:
            raise ValueError(f"--epochs: the run has done {ck.epoch} epochs; expected at least that many, "
                             f"got --epochs {overrides['epochs']}")
        config = replace(stored, schedule_epochs=stored.schedule_epochs or stored.epochs, **overrides)
        trainer = cls(config, splits=splits, out=path.parent if out is None else out, log=log, progress=progress,
                      net=ck.net)
        opt = trainer.optimizer
        if ck.optimizer_state.get("t", 0) and opt.state_names:
            n = sum(len(p) for p in trainer.net.params)
            want = [f"{name}.{k}" for name in opt.state_names for k in range(n)]
            missing = [key for key in want if key not in ck.optimizer_state]
            if missing:
                raise ValueError(
                    f"--resume: {path} lacks the optimiser arrays {missing[:6]}{' ...' if len(missing) > 6 else ''} "
                    f"({len(missing)} of {len(want)}); {stored.optimizer} after step {ck.optimizer_state['t']} "
                    f"cannot continue exactly without them (they would restart at zero)")
        opt.load_state_dict(ck.optimizer_state)
        trainer.rng = ck.make_rng()
        trainer.epoch, trainer.step = ck.epoch, ck.step
        trainer.history = ck.history
        trainer.best = ck.best
        return trainer

    # ------------------------------------------------------------------------ the loop
    def _epoch_plan(self) -> list:
        """The index sets of this epoch's steps (None: the whole training set)."""
        return self._epoch_plan_for(self.rng)

    def _epoch_plan_for(self, rng: np.random.Generator) -> list:
        from indexnet.data import batches

        c = self.config
        if c.mode == "minibatch":
            return batches(self.n_train, c.batch_size, rng)
        if c.mode == "sgd":
            # Algorithm 1 of seed 002: j ~ U{1..N} independently for every step
            return list(rng.integers(0, self.n_train, size=(self.steps_per_epoch, 1)))
        return [None] * self.steps_per_epoch

    def _batch(self, idx) -> tuple[np.ndarray, np.ndarray]:
        shape = self.net.input_shape
        if idx is None:
            X, T = self._X, self._T
        else:
            X, T = np.take(self._X, idx, axis=1), np.take(self._T, idx, axis=1)
        if self.augmenter is not None:  # a fresh distortion of every batch, drawn from the batch Generator
            X = self.augmenter(X, self.rng)
        return X.reshape(shape + (X.shape[-1],)), T

    def _diverged(self, what: str, epoch: int, k: int) -> TrainingDiverged:
        self._save_snapshot()  # the last good epoch's state, if it is not on disk yet
        ck = self.checkpoint_path if self.checkpoint_path and self.checkpoint_path.exists() else None
        where = f"epoch {epoch}, step {k} of {self.steps_per_epoch} (global step {self.step})"
        keep = (f"the last good checkpoint {ck} (end of epoch {self._last_checkpoint_epoch}) is kept" if ck else
                "no checkpoint had been written yet")
        return TrainingDiverged(
            f"training diverged: {what} at {where}; lr was {self.optimizer.lr:.4g}. Try a smaller --lr "
            f"(now {self.config.lr:g}); {keep}.", epoch, k, ck)

    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.out is None else self.out / CHECKPOINT_FILE

    @property
    def _last_checkpoint_epoch(self) -> int | None:
        from indexnet.io import load_npz

        try:
            return int(load_npz(self.checkpoint_path)[1]["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def fit(self, until_epoch: int | None = None) -> list[dict[str, Any]]:
        """Train from the current epoch to ``until_epoch`` (default ``config.epochs``).

        Returns
        -------
        list of dict
            The history (all epochs so far).

        Raises
        ------
        TrainingDiverged
            A NaN or Inf loss or parameter; the last good checkpoint is kept.
        """
        last = self.config.epochs if until_epoch is None else check_positive_int("until_epoch", until_epoch)
        self._stop = False
        with _sigint_to_flag(self), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            try:
                while self.epoch < last:
                    self._run_epoch(self.epoch + 1)
            except KeyboardInterrupt:
                self._save_snapshot()
                raise
        return self.history

    def interrupt(self) -> None:
        """Ask the running :meth:`fit` to stop after the current step (raises KeyboardInterrupt there)."""
        self._stop = True

    def _take_snapshot(self) -> None:
        """Keep the resumable state of the epoch just completed in memory: copies of the parameters and
        the optimiser's arrays, the generator state, the counters and the history's length (the history
        only grows, so it is not copied: a 4000-epoch run would copy it 4000 times)."""
        if self.out is None:
            return
        self._snapshot = {
            "params": [tuple(a.copy() for a in p) for p in self.net.params],
            "optimizer": self.optimizer.state_dict(), "rng": self.rng.bit_generator.state,
            "epoch": self.epoch, "step": self.step, "n_history": len(self.history),
            "best": None if self.best is None else dict(self.best),
        }

    def _save_snapshot(self) -> None:
        """On interruption: write the last completed epoch's state, unless it is already on disk."""
        snap = getattr(self, "_snapshot", None)
        if snap is None or self.out is None:
            return
        from indexnet.io import save_npz_atomic
        from indexnet.nn.network import Network
        from indexnet.train.checkpoint import checkpoint_payload

        if self._best_params is not None:
            self._save_best()
        net = self.net
        state = dict(snap["optimizer"], lr=float(self.config.lr))
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = snap["rng"]
        meta = self._meta()
        config = meta.pop("config")
        arrays, doc = checkpoint_payload(
            net=Network(net.layers, net.input_shape, net.loss_fn.name, dtype=net.dtype, params=snap["params"]),
            optimizer_name=self.config.optimizer, optimizer_state=state, rng=rng, epoch=snap["epoch"],
            step=snap["step"], history=self.history[: snap["n_history"]], config=config, best=snap["best"],
            extra=meta)
        save_npz_atomic(self.checkpoint_path, arrays, doc)
        self._snapshot = None
        self._checkpoint_time = time.perf_counter()

    def warm_up(self) -> float:
        """Compile (or load from Numba's cache) the kernels of a step and of the evaluation.

        Runs one step on a copy of the network and optimiser and one evaluation batch, so
        the training state is untouched. Returns the seconds it took. On a first run with
        two cores the kernels those calls need are compiled in two processes first
        (:mod:`indexnet._compile`), then the calls run and load them from the cache.
        """
        from indexnet import _compile

        t0 = time.perf_counter()
        if _compile.available():
            _compile.compile_in_two_processes(_compile.record_calls(self._warm_up_calls))
        self._warm_up_calls()
        return time.perf_counter() - t0

    def _warm_up_calls(self) -> None:
        """One step on a copy of the network and optimiser, and one evaluation batch."""
        from indexnet.train.step import make_train_step

        net = self.net.copy()
        step = make_train_step(net, self._make_optimizer(), self.engine)
        plan = self._epoch_plan_for(np.random.default_rng(0))
        shape = net.input_shape
        idx = plan[0]
        X = self._X if idx is None else np.take(self._X, idx, axis=1)
        T = self._T if idx is None else np.take(self._T, idx, axis=1)
        if self.augmenter is not None:  # its own Generator: the batch Generator is not touched
            X = self.augmenter(X, np.random.default_rng(0))
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            step(X.reshape(shape + (X.shape[-1],)), T)
            # one evaluation batch of the real size: the fast forward picks each kernel's build (parallel
            # or serial twin) by the batch size, and a one-example batch would compile a build no real
            # evaluation uses
            evaluate(net, self.splits.validation if self.splits.validation.n_samples else self.splits.train,
                     self.engine, self.config.eval_batch_size, limit=self.config.eval_batch_size)

    def _run_epoch(self, epoch: int) -> None:
        """One epoch's steps, then its metrics, checkpoint and log line."""
        from tqdm import tqdm

        c = self.config
        t0 = time.perf_counter()
        plan = self._epoch_plan()
        loss_sum, count = 0.0, 0
        with tqdm(total=len(plan), desc=f"epoch {epoch}/{c.epochs}", unit="step", leave=False,
                  disable=not self.progress, dynamic_ncols=True, mininterval=0.2) as bar:
            try:
                for k, idx in enumerate(plan, start=1):
                    X, T = self._batch(idx)
                    lr = self.schedule.lr_at(self.optimizer.t)
                    self.optimizer.lr = lr
                    J = self._step(X, T)
                    self.step += 1
                    if not math.isfinite(J):
                        raise self._diverged(f"the loss is {J}", epoch, k)
                    n = X.shape[-1]
                    loss_sum += per_example(self.net.loss_fn, J, n) * n
                    count += n
                    if self._stop:
                        raise KeyboardInterrupt
                    bar.update(1)
                    if k % 20 == 0 or k == len(plan):
                        bar.set_postfix(loss=f"{loss_sum / count:.4f}", refresh=False)
            finally:  # the parameters the step holds in its own order go back into the network
                self._sync()
        seconds = time.perf_counter() - t0
        self._end_epoch(epoch, lr, loss_sum / count, seconds)

    def _end_epoch(self, epoch: int, lr: float, train_loss: float, seconds: float) -> None:
        c = self.config
        t0 = time.perf_counter()
        if self.splits.validation.n_samples:
            val_m = evaluate(self.net, self.splits.validation, self.engine, c.eval_batch_size)
        else:  # --val-size 0 / --val-fraction 0: no validation metrics (NaN); the best epoch is the last
            val_m = {"loss": math.nan, ("accuracy" if self.splits.train.kind == "classification" else "rmse"): math.nan}
        if not ((math.isfinite(val_m["loss"]) or not self.splits.validation.n_samples)
                and np.isfinite(self.net.flat_params()).all()):
            raise self._diverged("the parameters or validation loss are not finite after the epoch", epoch,
                                 self.steps_per_epoch)
        record: dict[str, Any] = {"epoch": epoch, "step": self.step, "lr": lr, "train_loss": train_loss,
                                  "val_loss": val_m["loss"]}
        key = "acc" if "accuracy" in val_m else "rmse"
        if c.measures_train(epoch):  # see TrainConfig.train_eval_every
            train_m = evaluate(self.net, self.splits.train, self.engine, c.eval_batch_size, limit=c.train_eval_size)
            record[f"train_{key}"] = train_m["accuracy" if key == "acc" else "rmse"]
        record[f"val_{key}"] = val_m["accuracy" if key == "acc" else "rmse"]
        record["seconds"] = seconds
        record["eval_seconds"] = time.perf_counter() - t0
        self.history.append(record)
        self.session_seconds.append(seconds)
        self.epoch = epoch
        if self._is_better(record):
            self.best = {k: record[k] for k in record if k not in ("seconds", "eval_seconds")}
            self._best_params = [tuple(a.copy() for a in p) for p in self.net.params]
        due = (epoch == c.epochs or (c.checkpoint_every is not None and epoch % c.checkpoint_every == 0)
               or time.perf_counter() - self._checkpoint_time >= CHECKPOINT_SECONDS)
        if self.out is not None and due:
            # best.npz is written with the checkpoint, not at every improvement (a regression run may
            # improve every epoch for thousands of epochs)
            if self._best_params is not None:
                self._save_best()
            self.save_checkpoint()
            self._snapshot = None
        elif self.out is not None:
            self._take_snapshot()
        if self.log is not None and c.logged(epoch):
            self.log(self.epoch_line(record))

    def _is_better(self, record: dict) -> bool:
        if self.best is None or not self.splits.validation.n_samples:
            return True
        if "val_acc" in record:
            return (record["val_acc"], -record["val_loss"]) > (self.best["val_acc"], -self.best["val_loss"])
        return record["val_loss"] < self.best["val_loss"]

    def epoch_line(self, r: dict) -> str:
        """One line of per-epoch feedback."""
        width = len(str(self.config.epochs))
        parts = [f"epoch {r['epoch']:>{width}}/{self.config.epochs}"]
        if "val_acc" in r:
            parts.append(f"train loss (running mean) {r['train_loss']:.4f}" + (
                f"  train acc (end of epoch) {100 * r['train_acc']:6.2f}%" if "train_acc" in r else ""))
            parts.append(f"val loss {r['val_loss']:.4f} acc {100 * r['val_acc']:6.2f}%")
        else:
            parts.append(f"train loss (running mean) {r['train_loss']:.4g}" + (
                f"  train rmse (end of epoch) {r['train_rmse']:.4g}" if "train_rmse" in r else ""))
            parts.append(f"val loss {r['val_loss']:.4g} rmse {r['val_rmse']:.4g}")
        if self.best is not None and self.best.get("epoch") == r["epoch"]:
            parts.append("best")
        parts.append(f"lr {r['lr']:.3g}")
        parts.append(f"{r['seconds']:.2f}s")
        return "  ".join(parts)

    # --------------------------------------------------------------------- evaluation
    def evaluate(self, part: str = "test") -> dict[str, Any]:
        """Loss and accuracy (or RMSE) of the current network on ``train``, ``validation`` or ``test``."""
        check_choice("part", part, ("train", "validation", "test"))
        return evaluate(self.net, getattr(self.splits, part), self.engine, self.config.eval_batch_size)

    # ------------------------------------------------------------------------ writing
    def _meta(self) -> dict[str, Any]:
        from indexnet._version import __version__

        return {"data": data_meta(self.config, self.splits), "config": self.config.to_dict(),
                "layers_spec": self.layers_spec, "indexnet_version": __version__}

    def _save_best(self) -> Path:
        """Write the best epoch's parameters to ``out/best.npz``."""
        from indexnet.io import save_model

        from indexnet.nn.network import Network

        net = self.net
        best = Network(net.layers, net.input_shape, net.loss_fn.name, dtype=net.dtype, params=self._best_params)
        self._best_params = None
        return save_model(best, self.out / BEST_FILE, epoch=self.best["epoch"], best=self.best, **self._meta())

    def _checkpoint_payload(self) -> tuple[dict, dict]:
        """The arrays and JSON meta of a checkpoint of the current state."""
        from indexnet.train.checkpoint import checkpoint_payload

        state = self.optimizer.state_dict()
        state["lr"] = float(self.config.lr)  # the schedule sets the rate of every step from config.lr
        meta = self._meta()
        config = meta.pop("config")
        arrays, doc = checkpoint_payload(
            net=self.net, optimizer_name=self.config.optimizer, optimizer_state=state,
            rng=self.rng, epoch=self.epoch, step=self.step, history=[dict(r) for r in self.history], config=config,
            best=None if self.best is None else dict(self.best), extra=meta,
        )
        return arrays, doc

    def save_checkpoint(self, path=None) -> Path:
        """Write the resumable state (atomically) to ``path`` (default ``out/checkpoint.npz``)."""
        from indexnet.io import save_npz_atomic

        written = save_npz_atomic(path or self.checkpoint_path, *self._checkpoint_payload())
        self._checkpoint_time = time.perf_counter()
        return written

    def save_model(self, path, **meta: Any) -> Path:
        """Save the network with its data scaling and configuration (atomically, no pickle)."""
        from indexnet.io import save_model

        return save_model(self.net, path, epoch=self.epoch, **self._meta(), **meta)

    def save_outputs(self, test_metrics: dict | None = None, *, plots: bool = True) -> dict[str, Path]:
        """Write model.npz, history.csv/json, metrics.json and the PNG plots into ``out``.

        Returns
        -------
        dict
            What was written: name -> path.
        """
        from indexnet.train import plots as P

        if self.out is None:
            raise ValueError("out: expected an output folder to write to, got None")
        test_metrics = self.evaluate("test") if test_metrics is None else test_metrics
        written: dict[str, Path] = {}
        written["model"] = self.save_model(self.out / MODEL_FILE, metrics={"test": _plain(test_metrics)})
        written.update(write_history(self.history, self.out))
        summary = {"test": _plain(test_metrics), "best_validation": self.best, "epochs": self.epoch,
                   "steps": self.step, "config": self.config.to_dict(), "layers": self.layers_spec,
                   "n_params": self.net.n_params}
        written["metrics"] = write_text_atomic(self.out / "metrics.json", json.dumps(summary, indent=2) + "\n")
        if plots:
            written["curves"] = P.plot_history(self.history, self.out / "curves.png",
                                               title=f"{self.splits.train.name}: {self.layers_spec}",
                                               best_epoch=(self.best or {}).get("epoch"))
            if "predictions" in test_metrics:
                from indexnet.train.metrics import confusion_matrix

                cm = confusion_matrix(test_metrics["predictions"], self.splits.test.labels, self.splits.test.n_classes)
                written["confusion"] = P.plot_confusion(
                    cm, self.out / "confusion.png",
                    title=f"{self.splits.train.name} test: accuracy {100 * test_metrics['accuracy']:.2f}%",
                    class_names=self.splits.info.get("class_names"))
            fit = P.plot_fit(self.net, self.splits, self.out / "fit.png", engine=self.engine)
            if fit is not None:
                written["fit"] = fit
        return written


# ------------------------------------------------------------------------------ helpers
def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (MemAvailable, else physical memory), or None."""
    import os

    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_estimate(layers, input_shape, config: TrainConfig) -> tuple[int, int]:
    """``(bytes, parameters)``: what a run keeps in memory, from the shapes alone (nothing allocated).

    Parameters × (the parameters, their gradients, the optimiser's state arrays, the
    best epoch's copy and the in-memory checkpoint of the last epoch) plus the
    activations of a training batch and of an evaluation batch (values, pre-activations
    and deltas of every layer).
    """
    itemsize = np.dtype(config.dtype).itemsize
    n_params, units = 0, int(np.prod(input_shape))
    shape = tuple(input_shape)
    for layer in layers:
        n_params += sum(int(np.prod(s)) for s in layer.param_shapes(shape))
        shape = tuple(layer.output_shape(shape))
        units += int(np.prod(shape))
    state = {"sgd": 0, "momentum": 1, "adam": 2}[config.optimizer]
    copies = 1 + 1 + state + 1 + (1 + state)
    batch = config.batch_size if config.mode == "minibatch" else 1
    activations = 3 * units * (batch + config.eval_batch_size)
    return (copies * n_params + activations) * itemsize, n_params


def check_memory(layers, input_shape, config: TrainConfig, spec: str) -> None:
    """Refuse, before allocating, a network whose training would not fit in the available memory."""
    need, n_params = memory_estimate(layers, input_shape, config)
    have = available_memory()
    if have is not None and need > have:
        gib = 2.0 ** 30
        raise ValueError(
            f"--layers {spec}: training this network needs about {need / gib:.1f} GiB ({n_params:,} parameters in "
            f"{config.dtype}, with their gradients, the {config.optimizer} state, copies for checkpoints, and the "
            f"activations of a batch); this machine has {have / gib:.1f} GiB available. Choose smaller layers"
        )


class _sigint_to_flag:
    """While active (main thread only): SIGINT sets ``trainer._stop`` instead of raising at once.

    A KeyboardInterrupt raised while a compiled kernel runs surfaces as a SystemError;
    the flag is checked after every step, so the run stops cleanly between steps. A
    second Ctrl-C before that raises KeyboardInterrupt at once.
    """

    def __init__(self, trainer: "Trainer"):
        self.trainer = trainer
        self.previous = None

    def _handler(self, signum, frame) -> None:
        if self.trainer._stop:
            raise KeyboardInterrupt
        self.trainer._stop = True

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        import signal

        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def _plain(m: dict) -> dict:
    """Metrics without their arrays (JSON-able)."""
    return {k: v for k, v in m.items() if not isinstance(v, np.ndarray)}


def write_text_atomic(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    from indexnet.io import write_bytes_atomic

    return write_bytes_atomic(path, text.encode("utf-8"))


#: the order of the history.csv columns (those a run has), whatever order a record's keys come in
HISTORY_COLUMNS = ("epoch", "step", "lr", "train_loss", "train_acc", "train_rmse", "val_loss", "val_acc", "val_rmse",
                   "seconds", "eval_seconds")


def write_history(history: list[dict], out) -> dict[str, Path]:
    """history.json and history.csv (one row per epoch, columns in :data:`HISTORY_COLUMNS` order) in ``out``."""
    out = Path(out)
    present = {k for record in history for k in record}
    columns = [k for k in HISTORY_COLUMNS if k in present] + sorted(present - set(HISTORY_COLUMNS))
    history = [{k: r[k] for k in columns if k in r} for r in history]
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return {
        "history_json": write_text_atomic(out / "history.json", json.dumps(history, indent=1) + "\n"),
        "history_csv": write_text_atomic(out / "history.csv", buf.getvalue()),
    }
