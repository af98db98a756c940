"""Model files: round trip, atomic writes, no pickle, clear errors."""
import json

import numpy as np
import pytest

from indexnet import io
from indexnet.nn.network import Network


@pytest.fixture
def net():
    return Network.from_sizes([3, 4, 2], ["tanh", "softmax"], "cross_entropy", seed=3)


def test_round_trip_keeps_architecture_parameters_and_meta(net, tmp_path):
    """save_model then load_model gives the same layers, dtype, parameters and extra meta."""
    path = io.save_model(net, tmp_path / "m.npz", scaling={"method": "divide", "value": 16.0})
    back, meta = io.load_model(path)
    assert [l.spec() for l in back.layers] == [l.spec() for l in net.layers]
    assert back.dtype == net.dtype and back.input_shape == net.input_shape
    for pa, pb in zip(net.params, back.params):
        for a, b in zip(pa, pb):
            assert np.array_equal(a, b)
    assert meta["scaling"] == {"method": "divide", "value": 16.0}
    assert meta["format_version"] == io.FORMAT_VERSION


def test_file_opens_without_pickle(net, tmp_path):
    """Every entry loads with allow_pickle=False; the meta is plain JSON text."""
    path = io.save_model(net, tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as data:
        json.loads(str(data[io.META_KEY]))
        assert all(data[k].dtype != object for k in data.files)


def test_crash_during_write_leaves_previous_file_valid(net, tmp_path, monkeypatch):
    """An exception in the middle of writing keeps the old file readable and leaves no temp file."""
    path = io.save_model(net, tmp_path / "m.npz")
    before = path.read_bytes()

    def exploding_savez(fh, **arrays):
        fh.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(io.np, "savez", exploding_savez)
    with pytest.raises(OSError, match="disk full"):
        io.save_model(net, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]
    io.load_model(path)


def test_object_arrays_are_refused(tmp_path):
    """An object array would need pickle: refused with a TypeError naming it."""
    with pytest.raises(TypeError, match=r"arrays\['x'\]: expected a numeric array, got dtype object"):
        io.save_npz_atomic(tmp_path / "x.npz", {"x": np.array([{}], dtype=object)}, {})


@pytest.mark.parametrize(
    "content,match",
    [
        (b"not a zip at all", "not a readable .npz archive"),
        (None, "has no '__meta__' entry"),
    ],
)
def test_foreign_or_damaged_files_are_refused(tmp_path, content, match):
    """A damaged file or an .npz not written by indexnet gives a clear ValueError."""
    path = tmp_path / "bad.npz"
    if content is None:
        np.savez(path, a=np.zeros(2))
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        io.load_model(path)


def test_newer_format_version_is_refused(tmp_path):
    """A file from a newer indexnet says so instead of being misread."""
    path = io.save_npz_atomic(tmp_path / "m.npz", {}, {"format_version": io.FORMAT_VERSION + 1})
    with pytest.raises(ValueError, match="newer than this indexnet reads"):
        io.load_npz(path)


def test_missing_file_is_a_clear_error(tmp_path):
    """A path that does not exist raises FileNotFoundError naming it."""
    with pytest.raises(FileNotFoundError, match="does not exist"):
        io.load_model(tmp_path / "nope.npz")
