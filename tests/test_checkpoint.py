"""Checkpoints: exact round trip, atomic writes, no pickle, clear errors."""
import json

import numpy as np
import pytest

from indexnet import io
from indexnet.train.checkpoint import load_checkpoint, save_checkpoint
from indexnet.nn.network import Network
from indexnet.nn.optim import make_optimizer
from indexnet.train.trainer import Trainer

from test_train import config, tiny_splits


@pytest.fixture
def state():
    net = Network.from_sizes([3, 5, 2], ["relu", "softmax"], "cross_entropy", seed=1)
    opt = make_optimizer("adam", lr=0.01, engine="numpy")
    params = [a for p in net.params for a in p]
    rng = np.random.default_rng(7)
    opt.step(params, [np.ones_like(a) for a in params], [True, False, True, False])
    rng.permutation(10)
    return net, opt, rng


def save(path, net, opt, rng, **kw):
    return save_checkpoint(path, net=net, optimizer_name="adam", optimizer_state=opt.state_dict(), rng=rng,
                           epoch=3, step=12, history=[{"epoch": 1, "val_loss": 0.5}], config={"lr": 0.01},
                           best={"epoch": 1}, extra={"data": {"scaling": {"method": "none"}}}, **kw)


def test_round_trip_restores_parameters_optimizer_generator_and_counters(state, tmp_path):
    """Everything saved comes back exactly: parameters, optimiser state, the generator's next draws,
    epoch, step, history, config, best and extra meta."""
    net, opt, rng = state
    path = save(tmp_path / "c.npz", net, opt, rng)
    ck = load_checkpoint(path)
    assert np.array_equal(ck.net.flat_params(), net.flat_params())
    restored = make_optimizer("adam", lr=0.01, engine="numpy")
    restored.load_state_dict(ck.optimizer_state)
    for k, v in opt.state_dict().items():
        assert np.array_equal(restored.state_dict()[k], v)
    assert np.array_equal(ck.make_rng().random(5), rng.random(5))
    assert (ck.epoch, ck.step, ck.optimizer) == (3, 12, "adam")
    assert ck.history == [{"epoch": 1, "val_loss": 0.5}] and ck.config == {"lr": 0.01} and ck.best == {"epoch": 1}
    assert ck.meta["data"]["scaling"] == {"method": "none"}


def test_checkpoint_is_a_model_file_too_and_opens_without_pickle(state, tmp_path):
    """load_model reads a checkpoint's network; every entry loads with allow_pickle=False."""
    net, opt, rng = state
    path = save(tmp_path / "c.npz", net, opt, rng)
    back, meta = io.load_model(path)
    assert np.array_equal(back.flat_params(), net.flat_params()) and meta["kind"] == "checkpoint"
    with np.load(path, allow_pickle=False) as data:
        json.loads(str(data[io.META_KEY]))
        assert all(data[k].dtype != object for k in data.files)


def test_a_model_file_is_not_a_checkpoint(state, tmp_path):
    """Resuming from a model file fails with a message that says what was expected."""
    net, _, _ = state
    path = io.save_model(net, tmp_path / "m.npz")
    with pytest.raises(ValueError, match="is an indexnet 'model', expected a 'checkpoint'"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.npz")


def test_crash_in_the_middle_of_a_checkpoint_write_keeps_the_previous_checkpoint_valid(tmp_path, monkeypatch):
    """A trainer whose checkpoint write dies half-way (some bytes written, then an exception) leaves the
    previous checkpoint byte-identical and loadable, no temporary file behind, and the run resumable."""
    splits = tiny_splits()
    trainer = Trainer(config(epochs=3, checkpoint_every=1), splits=splits, out=tmp_path, log=None)
    trainer.fit(until_epoch=1)
    path = tmp_path / "checkpoint.npz"
    before = path.read_bytes()

    def dying_savez(fh, *args, **kwargs):
        fh.write(b"PK\x03\x04 half a zip archive")
        raise OSError("disk died mid-write")

    monkeypatch.setattr(io.np, "savez", dying_savez)
    with pytest.raises(OSError, match="disk died"):
        trainer.fit(until_epoch=2)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    ck = load_checkpoint(path)
    assert ck.epoch == 1
    resumed = Trainer.resume(path, splits=splits, log=None)
    resumed.fit()
    assert resumed.epoch == 3



def rewrite_meta(src, dst, **changes):
    """A copy of a checkpoint with some metadata fields replaced (None: removed)."""
    arrays, meta = io.load_npz(src)
    for k, v in changes.items():
        if v is None:
            meta.pop(k)
        else:
            meta[k] = v
    io.save_npz_atomic(dst, arrays, {k: v for k, v in meta.items() if k not in ("format", "format_version")})
    return dst


@pytest.mark.parametrize("changes,match", [
    ({"epoch": "3"}, r"expected epoch to be an integer >= 0, got '3'"),
    ({"rng_state": {"bit_generator": "MT19937", "state": {"key": [1], "pos": 0}}},
     r"expected the batch generator's state of a PCG64 generator .* got one of 'MT19937'"),
    ({"rng_state": None}, r"lacks \['rng_state'\]"),
])
def test_defective_checkpoint_metadata_is_a_clear_error(state, tmp_path, changes, match):
    """An epoch stored as text, the state of another random generator (a KeyError before) or a missing
    generator state: a ValueError naming the field."""
    path = save(tmp_path / "c.npz", *state)
    with pytest.raises(ValueError, match=match):
        load_checkpoint(rewrite_meta(path, tmp_path / "d.npz", **changes))
