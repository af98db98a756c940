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
        (b"not a zip at all", "not an .npz \\(zip\\) archive"),
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


def write_meta(path, text: str, arrays=None):
    """An .npz with a hand-written __meta__ entry (as a damaged or hand-edited file would hold)."""
    np.savez(path, **{io.META_KEY: np.array(text)}, **(arrays or {}))
    return path


def meta_text(**over):
    doc = {"format": "indexnet", "format_version": 1, "kind": "model",
           "architecture": {"input_shape": [3], "layers": [], "loss": "mse", "dtype": "float64"}}
    doc.update(over)
    return json.dumps({k: v for k, v in doc.items() if v is not None})


@pytest.mark.parametrize("text,match", [
    ("{not json", r"its '__meta__' entry is not valid JSON"),
    ("[1, 2]", r"expected its '__meta__' entry to be a JSON object, got a JSON list"),
    (meta_text(architecture=None), r"lacks an 'architecture' object"),
    (meta_text(format_version="1"), r"expected an integer format_version, got '1'"),
    (meta_text(architecture={"input_shape": [3]}), r"the architecture lacks \['layers', 'loss', 'dtype'\]"),
])
def test_defective_metadata_is_a_clear_error(tmp_path, text, match):
    """Metadata that is not JSON, not an object, lacks the architecture or has a format_version of the wrong
    type: a ValueError naming the defect (these used to raise JSONDecodeError, AttributeError, KeyError or
    TypeError)."""
    with pytest.raises(ValueError, match=match):
        io.load_model(write_meta(tmp_path / "m.npz", text))


def test_a_renamed_npy_and_a_pickle_are_refused_without_numpys_unsafe_advice(tmp_path):
    """A .npy renamed .npz says it is a single array; an archive holding pickled data is refused without
    NumPy's advice to load it "unsafely using allow_pickle"."""
    np.save(tmp_path / "a.npy", np.arange(3))
    (tmp_path / "a.npy").rename(tmp_path / "a.npz")
    with pytest.raises(ValueError, match=r"is a single NumPy array \(.npy\), not an .npz archive"):
        io.load_model(tmp_path / "a.npz")
    np.savez(tmp_path / "p.npz", **{io.META_KEY: np.array([{"x": 1}], dtype=object)})
    with pytest.raises(ValueError) as info:
        io.load_model(tmp_path / "p.npz")
    assert "allow_pickle" not in str(info.value) and "unsafe" not in str(info.value)
    assert "indexnet never reads" in str(info.value)


def test_a_folder_or_a_symlink_loop_is_named_as_such(tmp_path):
    """A folder or a loop of symbolic links as the model path is called that, not "does not exist"."""
    with pytest.raises(ValueError, match=r"is a folder; expected a file"):
        io.load_model(tmp_path)
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(ValueError, match=r"is a loop of symbolic links"):
        io.load_model(tmp_path / "a")
