"""The trainer: exact resume, divergence handling, the three modes, schedules, labels."""
import math

import numpy as np
import pytest

from indexnet.train.checkpoint import load_checkpoint
from indexnet.data.dataset import Dataset, make_splits, one_hot
from indexnet.nn.spec import SpecError
from indexnet.train.trainer import Trainer, TrainingDiverged, resolve_config

TIMING = ("seconds", "eval_seconds")


def tiny_splits(n=90, features=6, classes=3, seed=0, zeros=0.0):
    """A small, learnable classification set: the class is the argmax of 3 feature sums
    (with ``zeros``: about that fraction of the inputs set to 0 first)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(features, n))
    X[rng.random(X.shape) < zeros] = 0
    labels = np.argmax(X[:classes] + 0.5 * X[classes:2 * classes], axis=0)
    parts = (np.arange(0, 60), np.arange(60, 75), np.arange(75, n))
    return make_splits(X, parts, {"method": "test"}, labels=labels, name="tiny", scaling={"method": "none"},
                       n_classes=classes)


def config(**kw):
    base = dict(layers="16:relu,3:softmax", optimizer="adam", lr=0.01, schedule="cosine", batch_size=16,
                epochs=4, engine="numpy", dtype="float64", seed=3)
    base.update(kw)
    return resolve_config(**base)


def strip_timing(history):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in history]


def assert_same_state(a: Trainer, b: Trainer):
    for pa, pb in zip(a.net.params, b.net.params):
        for x, y in zip(pa, pb):
            assert x.dtype == y.dtype and np.array_equal(x, y)
    sa, sb = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert np.array_equal(sa[k], sb[k]), k
    assert a.rng.bit_generator.state == b.rng.bit_generator.state
    assert (a.epoch, a.step) == (b.epoch, b.step)
    assert strip_timing(a.history) == strip_timing(b.history)
    assert a.best == b.best


def crash_in_epoch_3_and_resume(cfg, splits, out):
    """A run that stops with Ctrl-C in epoch 3 (after the epoch-2 checkpoint), then
    ``Trainer.resume`` from that checkpoint run to the end: the resumed trainer."""
    broken = Trainer(cfg, splits=splits, out=out, log=None)
    step = broken._step
    calls = []

    def crash_in_epoch_3(X, Y):
        calls.append(1)
        if len(calls) == 2 * broken.steps_per_epoch + 2:
            raise KeyboardInterrupt
        return step(X, Y)

    broken._step = crash_in_epoch_3
    with pytest.raises(KeyboardInterrupt):
        broken.fit()
    assert load_checkpoint(out / "checkpoint.npz").epoch == 2
    resumed = Trainer.resume(out / "checkpoint.npz", splits=splits, log=None)
    assert resumed.epoch == 2
    resumed.fit()
    return resumed


@pytest.mark.parametrize("engine,dtype", [("numpy", "float64"), ("fast", "float32")])
def test_resume_equals_uninterrupted_run_bit_for_bit(tmp_path, engine, dtype):
    """4 epochs straight == 2 epochs, a crash in epoch 3, and --resume from the epoch-2 checkpoint:
    parameters, optimiser state, generator state and history (timings aside) are identical."""
    splits = tiny_splits()
    cfg = config(engine=engine, dtype=dtype)
    straight = Trainer(cfg, splits=splits, out=tmp_path / "a", log=None)
    straight.fit()

    assert_same_state(straight, crash_in_epoch_3_and_resume(cfg, splits, tmp_path / "b"))


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_resume_bit_for_bit_while_the_step_holds_the_first_layer_input_major(tmp_path, monkeypatch, optimizer):
    """Inputs mostly zero (as MNIST's), the fast engine summing the first layer over their
    support and holding W^(1) and the optimiser's state of it input-major between syncs:
    the checkpoints written at the epochs' ends are the network's and the optimiser's own
    order, so a crash in epoch 3 and --resume still give the uninterrupted run bit for bit."""
    from indexnet.train import fastpath

    monkeypatch.setattr(fastpath, "PARALLEL_WORK", 1)
    monkeypatch.setattr(fastpath, "SUPPORT_DENSITY", 0.5)
    splits = tiny_splits(features=12, zeros=0.7)
    cfg = config(engine="fast", dtype="float32", optimizer=optimizer, lr=0.02)
    straight = Trainer(cfg, splits=splits, out=tmp_path / "a", log=None)
    straight.fit()
    assert any(support for _, support in straight.net._workspaces), "the support regime did not run"

    assert_same_state(straight, crash_in_epoch_3_and_resume(cfg, splits, tmp_path / "b"))


def test_resume_refuses_options_that_change_the_run(tmp_path):
    """Only epochs and logging/checkpoint cadence may change on resume; anything else is an error naming it."""
    splits = tiny_splits()
    Trainer(config(epochs=1), splits=splits, out=tmp_path, log=None).fit()
    with pytest.raises(ValueError, match=r"--resume: options \['lr'\]"):
        Trainer.resume(tmp_path / "checkpoint.npz", splits=splits, log=None, lr=1.0)
    longer = Trainer.resume(tmp_path / "checkpoint.npz", splits=splits, log=None, epochs=2)
    longer.fit()
    assert [r["epoch"] for r in longer.history] == [1, 2]


def test_diverging_run_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path):
    """A huge learning rate from epoch 2 on makes the loss non-finite: the run stops naming the epoch and
    step, and checkpoint.npz still holds epoch 1, loadable and finite."""
    from indexnet.nn.optim import ConstantLR

    splits = tiny_splits()
    trainer = Trainer(config(optimizer="sgd", schedule="constant", lr=0.05, epochs=5), splits=splits,
                      out=tmp_path, log=None)
    trainer.fit(until_epoch=1)
    trainer.schedule = ConstantLR(1e300)
    with pytest.raises(TrainingDiverged, match=r"training diverged: .* at epoch 2, step \d+ of 4") as info:
        trainer.fit()
    assert "last good checkpoint" in str(info.value) and "end of epoch 1" in str(info.value)
    assert info.value.epoch == 2 and info.value.checkpoint == tmp_path / "checkpoint.npz"
    ck = load_checkpoint(tmp_path / "checkpoint.npz")
    assert ck.epoch == 1
    assert np.isfinite(ck.net.flat_params()).all()
    assert all(np.isfinite(v).all() for v in ck.optimizer_state.values() if isinstance(v, np.ndarray))


def test_divergence_in_the_first_epoch_says_no_checkpoint_exists(tmp_path):
    """Diverging before any checkpoint: TrainingDiverged says so and nothing half-trained is written."""
    trainer = Trainer(config(optimizer="sgd", schedule="constant", lr=1e300), splits=tiny_splits(),
                      out=tmp_path, log=None)
    with pytest.raises(TrainingDiverged, match="epoch 1, step .*no checkpoint had been written yet"):
        trainer.fit()
    assert not (tmp_path / "checkpoint.npz").exists()


def record_steps(trainer):
    """Wrap the trainer's step to record each batch's inputs."""
    seen = []
    step = trainer._step

    def recording(X, Y):
        seen.append(X.copy())
        return step(X, Y)

    trainer._step = recording
    return seen


def test_sgd_mode_draws_exactly_one_example_per_step():
    """Mode sgd (seed 002 Algorithm 1): every step sees one training example; an epoch is
    --steps-per-epoch steps; the examples are training columns drawn with replacement."""
    splits = tiny_splits()
    trainer = Trainer(config(mode="sgd", steps_per_epoch=25, epochs=2, optimizer="sgd", schedule="constant"),
                      splits=splits, log=None)
    seen = record_steps(trainer)
    trainer.fit()
    assert len(seen) == 50 and trainer.step == 50
    assert all(X.shape == (6, 1) for X in seen)
    train = np.asarray(splits.train.X)
    for X in seen:
        assert np.any(np.all(train == X, axis=0))
    default = Trainer(config(mode="sgd"), splits=splits, log=None)
    assert default.steps_per_epoch == splits.train.n_samples


def test_fullbatch_mode_takes_one_step_per_epoch_on_the_whole_training_set():
    """Mode fullbatch (seed 000 eq. 3, sign corrected): one step per epoch, every training example in it."""
    splits = tiny_splits()
    trainer = Trainer(config(mode="fullbatch", optimizer="sgd", schedule="constant", epochs=3), splits=splits,
                      log=None)
    seen = record_steps(trainer)
    trainer.fit()
    assert len(seen) == 3 and all(np.array_equal(X, splits.train.X) for X in seen)
    assert [r["step"] for r in trainer.history] == [1, 2, 3]


def test_fullbatch_gradient_descent_descends():
    """θ ← θ − μ ∂J/∂θ lowers the training loss of full-batch GD on seed 003's x² (the sign of eq. 3 fixed)."""
    trainer = Trainer(resolve_config("seed000", epochs=60, engine="numpy", log_every=60), log=None)
    trainer.fit()
    losses = [r["train_loss"] for r in trainer.history]
    assert losses[-1] < 0.5 * losses[0]


def test_minibatch_epoch_visits_every_example_once():
    """Mode minibatch: one epoch's batches are a permutation of the training set (last batch smaller)."""
    splits = tiny_splits()
    trainer = Trainer(config(batch_size=16, epochs=1), splits=splits, log=None)
    seen = record_steps(trainer)
    trainer.fit()
    assert [X.shape[1] for X in seen] == [16, 16, 16, 12]
    cols = np.concatenate(seen, axis=1)
    order = np.lexsort(cols)
    assert np.array_equal(cols[:, order], np.asarray(splits.train.X)[:, np.lexsort(splits.train.X)])


@pytest.mark.parametrize("schedule,expect", [
    ("step", lambda t, n: 0.1 * 0.5 ** (t // (2 * n))),
    ("cosine", lambda t, n: 0.5 * 0.1 * (1 + math.cos(math.pi * t / (6 * n)))),
])
def test_schedule_sets_the_rate_of_every_step(schedule, expect):
    """Each step runs at the schedule's rate for the optimiser's step count (step: ×γ every step_size epochs)."""
    trainer = Trainer(config(optimizer="momentum", lr=0.1, schedule=schedule, step_size=2, gamma=0.5, epochs=6),
                      splits=tiny_splits(), log=None)
    rates = []
    step = trainer._step

    def recording(X, Y):
        rates.append(trainer.optimizer.lr)
        return step(X, Y)

    trainer._step = recording
    trainer.fit()
    n = trainer.steps_per_epoch
    assert rates == pytest.approx([expect(t, n) for t in range(6 * n)], rel=1e-12)


def test_weight_decay_shrinks_weights():
    """L2 weight decay (--weight-decay) ends with smaller weights than none, all else equal."""
    norms = []
    for wd in (0.0, 0.1):
        trainer = Trainer(config(optimizer="sgd", schedule="constant", lr=0.1, weight_decay=wd), splits=tiny_splits(),
                          log=None)
        trainer.fit()
        norms.append(sum(float(np.sum(p[0] ** 2)) for p in trainer.net.params))
    assert norms[1] < norms[0]


def test_labels_outside_the_class_range_are_rejected():
    """A label >= n_classes or < 0 is refused where data is built, naming the value and its index, and a
    data set whose classes do not match the output layer is refused by the trainer."""
    with pytest.raises(ValueError, match=r"labels: expected integers in \[0, 3\), got 3 at index 2"):
        one_hot(np.array([0, 1, 3]), 3)
    with pytest.raises(ValueError, match=r"got -1 at index 0"):
        Dataset(np.zeros((2, 2)), np.zeros((3, 2)), "classification", "x", {"method": "none"},
                np.array([-1, 0]), 3)
    with pytest.raises(SpecError, match=r"expected the last layer to give 3 output\(s\)"):
        Trainer(config(layers="16:relu,10:softmax"), splits=tiny_splits(), log=None)


def test_config_errors_name_the_option():
    """Bad options fail with the option's name, what was expected and what was given."""
    with pytest.raises(ValueError, match=r"--mode: expected one of 'minibatch', 'sgd', 'fullbatch', got 'batch'"):
        resolve_config(mode="batch")
    with pytest.raises(ValueError, match=r"--lr: expected a number > 0, got -1"):
        resolve_config(lr=-1)
    with pytest.raises(ValueError, match=r"--data-dir: expected the folder"):
        resolve_config(data="mnist")
    with pytest.raises(ValueError, match="--steps-per-epoch: applies to --mode sgd or fullbatch"):
        resolve_config(steps_per_epoch=3)
    with pytest.raises(ValueError, match="--preset: expected one of"):
        resolve_config("seed999")


def test_presets_and_their_data():
    """Presets fill data, layers and loss; explicit options override; --layers drops the preset's loss."""
    assert resolve_config().layers == "800:relu,10:softmax" and resolve_config().loss == "cross_entropy"
    seed002 = resolve_config("seed002")
    assert (seed002.data, seed002.layers, seed002.loss, seed002.mode) == ("sphere", "3:relu,4:relu,3:identity",
                                                                           "half_se", "sgd")
    assert resolve_config("seed001", data="mnist", data_dir="x").data == "mnist"
    custom = resolve_config(layers="32:tanh,1:identity", data="square")
    assert custom.loss is None and custom.preset == "seed000" and custom.mode == "fullbatch"


def test_every_option_overrides_only_itself():
    """--layers on digits changes the layers (and the loss that follows from them) and keeps the digits
    preset's Adam, lr 0.002, batch 200 and 100 epochs; --lr changes only the rate."""
    base = resolve_config()
    wide = resolve_config(layers="100:relu,10:softmax")
    assert (wide.optimizer, wide.lr, wide.batch_size, wide.epochs) == ("adam", 0.002, 200, 100)
    assert wide.layers == "100:relu,10:softmax" and wide.loss is None
    from dataclasses import asdict
    for name, value in (("lr", 0.01), ("batch_size", 64), ("optimizer", "sgd"), ("epochs", 3)):
        changed = {k for k, v in asdict(resolve_config(**{name: value})).items() if v != getattr(base, k)}
        assert changed == {name}


def test_a_preset_carries_its_data_set():
    """--preset seed001 trains MNIST (so it asks for --data-dir), not silently the digits; --data naming a
    set the preset was not made for is an error naming both."""
    with pytest.raises(ValueError, match=r"--data-dir: expected the folder.*--data mnist"):
        resolve_config("seed001")
    with pytest.raises(ValueError, match=r"--preset seed001: made for --data mnist or fashion, got --data digits"):
        resolve_config("seed001", data="digits")
    assert resolve_config("seed001", data="fashion", data_dir="x").data == "fashion"
    assert resolve_config("cnn", data="mnist", data_dir="x").layers.startswith("conv8")


def test_config_sources_name_where_each_value_came_from():
    """resolve_config_sources labels each value: built-in default, the data set's preset, --preset, command line."""
    from indexnet.train.trainer import resolve_config_sources

    _, src = resolve_config_sources(None, layers="100:relu,10:softmax", lr=0.1)
    assert src["lr"] == "command line" and src["optimizer"] == "data set's preset digits"
    assert src["momentum"] == "built-in default" and src["loss"].startswith("from --layers")
    _, src = resolve_config_sources("sphere", epochs=2)
    assert src["optimizer"] == "--preset sphere" and src["epochs"] == "command line"


def test_ctrl_c_inside_a_step_stops_after_that_step_and_keeps_the_last_epoch(tmp_path):
    """SIGINT that arrives while a step runs (as inside a compiled kernel) does not tear the step: the step
    finishes, fit raises KeyboardInterrupt, checkpoint.npz holds the last completed epoch, and resuming it
    ends in exactly the state of an uninterrupted run."""
    import os
    import signal

    splits = tiny_splits()
    full = Trainer(config(), splits=splits, log=None)
    full.fit()
    trainer = Trainer(config(), splits=splits, out=tmp_path, log=None)
    real_step, calls = trainer._step, []

    def step(X, Y):
        calls.append(1)
        if len(calls) == 7:  # epoch 2, step 3
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(X, Y)

    trainer._step = step
    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN when started in the background
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert trainer.step == 7 and trainer.epoch == 1
    assert load_checkpoint(tmp_path / "checkpoint.npz").epoch == 1
    assert signal.getsignal(signal.SIGINT) is before  # the handler fit found is put back
    resumed = Trainer.resume(tmp_path / "checkpoint.npz", splits=splits, log=None)
    resumed.fit()
    assert_same_state(full, resumed)


def test_extending_a_run_keeps_the_schedule_and_the_history_columns(tmp_path):
    """Resuming a finished 4-epoch cosine run with epochs=6 trains 2 more epochs at the schedule's final rate
    (the rate never jumps back up), and history.csv keeps its column order."""
    from indexnet.train.trainer import HISTORY_COLUMNS, write_history

    splits = tiny_splits()
    first = Trainer(config(lr_min=1e-4), splits=splits, out=tmp_path, log=None)
    first.fit()
    write_history(first.history, tmp_path)
    header = (tmp_path / "history.csv").read_text().splitlines()[0]
    more = Trainer.resume(tmp_path, splits=splits, log=None, epochs=6)
    assert more.config.schedule_epochs == 4
    more.fit()
    lrs = [r["lr"] for r in more.history]
    assert lrs == sorted(lrs, reverse=True) and lrs[4] == pytest.approx(1e-4) and lrs[5] == pytest.approx(1e-4)
    write_history(more.history, tmp_path)
    assert (tmp_path / "history.csv").read_text().splitlines()[0] == header
    assert header.split(",") == [c for c in HISTORY_COLUMNS if c in header.split(",")]
    with pytest.raises(ValueError, match=r"--epochs: the run has done 6 epochs"):
        Trainer.resume(tmp_path, splits=splits, log=None, epochs=3)


def test_a_checkpoint_without_its_optimizer_arrays_is_refused(tmp_path):
    """An Adam checkpoint whose moment arrays are gone would resume with them silently reset: refused,
    naming the missing arrays."""
    from indexnet.io import load_npz, save_npz_atomic

    splits = tiny_splits()
    trainer = Trainer(config(epochs=1), splits=splits, out=tmp_path, log=None)
    trainer.fit()
    arrays, meta = load_npz(tmp_path / "checkpoint.npz")
    kept = {k: v for k, v in arrays.items() if not k.startswith("optim.m.")}
    save_npz_atomic(tmp_path / "broken.npz", kept, meta)
    with pytest.raises(ValueError, match=r"lacks the optimiser arrays \['m\.0'"):
        Trainer.resume(tmp_path / "broken.npz", splits=splits, log=None, epochs=2)


def test_epoch_lines_label_the_running_mean_and_the_end_of_epoch_accuracy():
    """The training loss is a running mean over the epoch's steps, the training accuracy is measured after
    it: the log line says which is which."""
    lines = []
    Trainer(config(epochs=1), splits=tiny_splits(), log=lines.append).fit()
    assert "train loss (running mean)" in lines[0] and "train acc (end of epoch)" in lines[0]


def test_the_log_cadence_follows_the_epochs():
    """Without --log-every a run logs the first epoch and every tenth of its epochs: 5 epochs print 5 lines
    (a preset's fixed cadence of 10 printed 2), 30 print 11."""
    for epochs, expected in ((5, 5), (30, 11)):
        lines = []
        Trainer(config(epochs=epochs, layers="4:relu,3:softmax"), splits=tiny_splits(), log=lines.append).fit()
        assert len(lines) == expected


@pytest.mark.slow
def test_digits_default_reaches_97_percent():
    """The default `indexnet train` configuration (seed 001's network on the 8×8 digits, default engine)
    reaches at least 97 % test accuracy. Per-epoch training accuracy and checkpoints are skipped here to
    save time; neither touches the parameters or the batch generator, so the run is the same."""
    from dataclasses import replace

    trainer = Trainer(replace(resolve_config(), train_eval_size=1), log=None)
    trainer.fit()
    assert trainer.evaluate("test")["accuracy"] >= 0.97


def test_fast_engine_follows_the_schedule():
    """The trainer's fast engine (the fast train step) takes the schedule's rate at every step: a cosine
    run ends with other parameters than a constant-rate run with the same seed."""
    finals = []
    for schedule in ("constant", "cosine"):
        trainer = Trainer(config(engine="fast", optimizer="sgd", lr=0.1, schedule=schedule, epochs=2),
                          splits=tiny_splits(), log=None)
        trainer.fit()
        finals.append(trainer.net.flat_params())
    assert not np.array_equal(finals[0], finals[1])


def history_records(n, loss0=1.0, ratio=0.9):
    return [{"epoch": e, "train_loss": loss0 * ratio ** e, "val_loss": loss0 * ratio ** e * 1.1,
             "train_acc": 0.5 + 0.01 * e, "val_acc": 0.45 + 0.01 * e} for e in range(1, n + 1)]


def test_curves_show_one_epoch_integer_ticks_a_sane_loss_axis_and_the_best_epoch():
    """One epoch draws visible markers; a 3-epoch run has integer epoch ticks and a linear loss axis (the
    losses span less than a decade); the best epoch is marked; a long title does not overlap the panel
    titles."""
    from indexnet.train.plots import history_figure

    fig = history_figure(history_records(1), title="t")
    for ax in fig.axes:
        assert all(line.get_marker() == "o" for line in ax.get_lines()[:2])
    fig = history_figure(history_records(3), title="digits: " + ",".join(["800:relu"] * 30) + ",10:softmax",
                         best_epoch=2)
    fig.canvas.draw()
    loss_ax = fig.axes[0]
    assert loss_ax.get_yscale() == "linear"
    ticks = [t for t in loss_ax.get_xticks() if loss_ax.get_xlim()[0] <= t <= loss_ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert any(list(line.get_xdata()) == [2, 2] for line in loss_ax.get_lines())
    renderer = fig.canvas.get_renderer()
    sup = fig._suptitle.get_window_extent(renderer)
    for ax in fig.axes:
        assert not sup.overlaps(ax.title.get_window_extent(renderer))
    assert history_figure(history_records(60, ratio=0.8)).axes[0].get_yscale() == "log"


def test_fast_evaluation_runs_the_training_steps_own_kernels(monkeypatch):
    """With the fast engine, evaluating a dense network runs the step's forward kernels (D1.5) and its fused
    output pass (L10), not a second set of kernels to compile: Network.forward is never called, the
    read-only arrays of a data set reach no kernel (a read-only array is a new Numba signature, i.e. a new
    compile), and loss, accuracy and predictions equal the exact loops build's to rounding."""
    from indexnet.kernels import dense, losses
    from indexnet.nn.network import Network
    from indexnet.train import fastpath
    from indexnet.train.metrics import evaluate

    splits = tiny_splits()
    for layers in ("16:relu,3:softmax", "2000:relu,3:softmax"):  # the small step's regime, the layers regime
        trainer = Trainer(config(engine="fast", epochs=1, layers=layers, batch_size=60), splits=splits, log=None)
        assert trainer._step.regime(60) == ("small" if layers.startswith("16:") else "layers")
        trainer.fit()
        val = splits.validation
        assert not val.X.flags.writeable
        exact = evaluate(trainer.net, val, "loops")
        kernels = [dense.forward_activation_fast, losses.softmax_cross_entropy_fast]
        kernels += [fastpath._twin(k) for k in kernels]
        before = {k: set(k.signatures) for k in kernels}
        with monkeypatch.context() as m:
            m.setattr(Network, "forward", lambda *a, **k: pytest.fail("evaluate called Network.forward"))
            fast = evaluate(trainer.net, val, "fast", batch_size=7)  # a shorter last batch too
        assert fast["loss"] == pytest.approx(exact["loss"], rel=1e-12)
        assert fast["accuracy"] == exact["accuracy"]
        assert np.array_equal(fast["predictions"], exact["predictions"])
        for k in kernels:  # no new signature (a read-only array would be one): nothing compiled
            assert set(k.signatures) == before[k], (k, set(k.signatures) - before[k])


def test_the_training_accuracy_is_measured_after_the_logged_epochs_only(tmp_path):
    """The training accuracy is a second pass over the training set, as costly as the epoch's forward
    passes: by default it is measured after the logged epochs only (the first, every tenth of the run, the
    last), history.csv leaves the other cells empty, the curves say how many epochs it was measured after;
    train_eval_every=1 measures it after every epoch. The validation metrics are there for every epoch."""
    from indexnet.train.plots import history_figure
    from indexnet.train.trainer import write_history

    lines = []
    trainer = Trainer(config(epochs=25, layers="4:relu,3:softmax"), splits=tiny_splits(), log=lines.append)
    trainer.fit()
    logged = {1, 25} | set(range(3, 25, 3))
    assert {r["epoch"] for r in trainer.history if "train_acc" in r} == logged
    assert all("val_acc" in r and "val_loss" in r for r in trainer.history)
    assert len(lines) == len(logged) and all("train acc (end of epoch)" in line for line in lines)
    write_history(trainer.history, tmp_path)
    rows = (tmp_path / "history.csv").read_text().splitlines()
    col = rows[0].split(",").index("train_acc")
    assert [r.split(",")[col] != "" for r in rows[1:]] == [e in logged for e in range(1, 26)]
    labels = history_figure(trainer.history).axes[1].get_legend_handles_labels()[1]
    assert f"train (measured after {len(logged)} of 25 epochs)" in labels
    every = Trainer(config(epochs=5, train_eval_every=1, log_every=5), splits=tiny_splits(), log=None)
    every.fit()
    assert all("train_acc" in r for r in every.history)


def test_the_digits_default_runs_one_build_of_each_kernel(monkeypatch):
    """Every build of a kernel (parallel form or serial twin) is a compile of its own on a first run: the
    default run (64-800-10, batches of 200 and a last one of 57, evaluation batches of 1000, 257 and 180,
    and the compile warm-up) picks one build per kernel, the same in training and evaluation, by the
    largest work among the layers the kernel runs on."""
    from dataclasses import replace

    from indexnet.train import fastpath

    picked = {}
    pick = fastpath._pick

    def spy(kernel, work):
        chosen = pick(kernel, work)
        picked.setdefault(kernel.py_func.__name__, set()).add(chosen is kernel)
        return chosen

    monkeypatch.setattr(fastpath, "_pick", spy)
    trainer = Trainer(replace(resolve_config(), epochs=2), log=None)
    trainer.warm_up()
    trainer.fit()
    trainer.evaluate("test")
    assert {"forward_activation_fast", "weight_grad_fast", "softmax_cross_entropy_fast"} <= set(picked)
    assert all(len(builds) == 1 for builds in picked.values()), picked
    # D2.25 runs on the 10 × 800 layer only: 1.6 M multiply-adds at 200, below PARALLEL_OP, so serially
    assert picked["input_grad_fast"] == {False} and picked["forward_activation_fast"] == {True}


def test_val_size_zero_trains_on_every_example(tmp_path):
    """--val-fraction 0 (--val-size 0 for MNIST-format sets) keeps no validation split: training uses every
    non-test example, the history's validation metrics are NaN, and the best epoch is the last."""
    import math

    from indexnet.train.trainer import Trainer, resolve_config

    cfg = resolve_config(data="digits", layers="16:relu,10:softmax", optimizer="momentum", lr=0.05, batch_size=128,
                         epochs=2, engine="numpy", dtype="float64", seed=1, val_fraction=0, train_eval_size=50)
    t = Trainer(cfg, out=tmp_path / "all", log=None)
    assert t.splits.validation.n_samples == 0 and t.n_train == 1797 - t.splits.test.n_samples
    t.fit()
    assert [r["epoch"] for r in t.history] == [1, 2] and all(math.isnan(r["val_loss"]) for r in t.history)
    assert t.best["epoch"] == 2 and math.isfinite(t.history[-1]["train_loss"])
