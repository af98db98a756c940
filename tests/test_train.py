"""The trainer: exact resume, divergence handling, the three modes, schedules, labels."""
import math

import numpy as np
import pytest

from indexnet.train.checkpoint import load_checkpoint
from indexnet.data.dataset import Dataset, make_splits, one_hot
from indexnet.nn.spec import SpecError
from indexnet.train.trainer import Trainer, TrainingDiverged, resolve_config

TIMING = ("seconds", "eval_seconds")


def tiny_splits(n=90, features=6, classes=3, seed=0):
    """A small, learnable classification set: the class is the argmax of 3 feature sums."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(features, n))
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


@pytest.mark.parametrize("engine,dtype", [("numpy", "float64"), ("loops", "float32")])
def test_resume_equals_uninterrupted_run_bit_for_bit(tmp_path, engine, dtype):
    """4 epochs straight == 2 epochs, a crash in epoch 3, and --resume from the epoch-2 checkpoint:
    parameters, optimiser state, generator state and history (timings aside) are identical."""
    splits = tiny_splits()
    cfg = config(engine=engine, dtype=dtype)
    straight = Trainer(cfg, splits=splits, out=tmp_path / "a", log=None)
    straight.fit()

    broken = Trainer(cfg, splits=splits, out=tmp_path / "b", log=None)
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
    assert load_checkpoint(tmp_path / "b" / "checkpoint.npz").epoch == 2

    resumed = Trainer.resume(tmp_path / "b" / "checkpoint.npz", splits=splits, log=None)
    assert resumed.epoch == 2
    resumed.fit()
    assert_same_state(straight, resumed)


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
    assert custom.loss is None and custom.preset is None


@pytest.mark.slow
def test_digits_default_reaches_97_percent():
    """The default `indexnet train` configuration (seed 001's network on the 8×8 digits, default engine)
    reaches at least 97 % test accuracy. Per-epoch training accuracy and checkpoints are skipped here to
    save time; neither touches the parameters or the batch generator, so the run is the same."""
    from dataclasses import replace

    trainer = Trainer(replace(resolve_config(), train_eval_size=1), log=None)
    trainer.fit()
    assert trainer.evaluate("test")["accuracy"] >= 0.97


def test_loops_engine_follows_the_schedule():
    """The trainer's loops engine (the fast train step) takes the schedule's rate at every step: a cosine
    run ends with other parameters than a constant-rate run with the same seed."""
    finals = []
    for schedule in ("constant", "cosine"):
        trainer = Trainer(config(engine="loops", optimizer="sgd", lr=0.1, schedule=schedule, epochs=2),
                          splits=tiny_splits(), log=None)
        trainer.fit()
        finals.append(trainer.net.flat_params())
    assert not np.array_equal(finals[0], finals[1])
