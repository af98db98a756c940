"""The data layer: splits, scaling, one-hot, batches, IDX files, MNIST, CSV, seed 003 sets.

Every file these tests read is written by the tests themselves (small IDX and CSV files
in tmp_path); nothing depends on a download or on ../shared.
"""
from __future__ import annotations

import gzip
import json
import math
import struct
import time
import tracemalloc

import numpy as np
import pytest

from indexnet.data import (
    Dataset,
    apply_scaling,
    batches,
    check_scaling,
    load,
    load_csv,
    load_digits,
    load_mnist,
    load_sphere,
    load_square,
    one_hot,
    read_idx,
    split_indices,
    write_idx,
)
from indexnet.data.synthetic import sphere_point


@pytest.fixture(scope="module")
def digits():
    """The default digits split (seed 0), loaded once for the module."""
    return load_digits()


@pytest.fixture(scope="module")
def digits_raw():
    """The raw digits of the package's digits.npz: pixels (1797, 64) in 0..16 and labels."""
    from indexnet.data.digits import digits_arrays

    return digits_arrays()


def test_embedded_digits_equal_scikit_learns_copy(digits_raw):
    """digits.npz holds exactly scikit-learn's load_digits (same pixels, labels and row order)."""
    sk = pytest.importorskip("sklearn.datasets")
    X, y = sk.load_digits(return_X_y=True)
    np.testing.assert_array_equal(digits_raw[0], X)
    np.testing.assert_array_equal(digits_raw[1], y)


def test_loading_digits_does_not_import_scikit_learn():
    """The default data set loads without scikit-learn (importing it cost 3 s of every run)."""
    import subprocess
    import sys

    code = "import sys; from indexnet.data import load_digits; load_digits(); print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def idx_header(code: int, dims: tuple[int, ...]) -> bytes:
    """An IDX header written by hand from the format description (not by write_idx)."""
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)


# --------------------------------------------------------------------------- digits and splits


def test_digits_sizes_shapes_and_layout(digits):
    """Digits splits 1257/180/360, samples last, C-contiguous float64 in [0, 1], a free (C,H,W,N) view."""
    assert digits.sizes == (1257, 180, 360)
    for ds in (digits.train, digits.validation, digits.test):
        n = ds.n_samples
        assert ds.X.shape == (64, n) and ds.T.shape == (10, n) and ds.labels.shape == (n,)
        assert ds.X.dtype == np.float64 and ds.X.flags.c_contiguous and ds.T.flags.c_contiguous
        assert ds.kind == "classification" and ds.n_classes == 10 and ds.name == "digits"
        assert 0.0 <= ds.X.min() and ds.X.max() <= 1.0
        np.testing.assert_array_equal(ds.T.argmax(axis=0), ds.labels)
        np.testing.assert_array_equal(ds.T.sum(axis=0), 1.0)
        images = ds.images()
        assert images.shape == (1, 8, 8, n) and np.shares_memory(images, ds.X)
    assert digits.train.scaling == {"method": "divide", "value": 16.0}


def test_digits_split_is_deterministic_by_seed(digits):
    """The same seed gives the same split bit for bit; another seed gives another one."""
    again = load_digits(seed=0)
    other = load_digits(seed=1)
    for part in ("train", "validation", "test"):
        np.testing.assert_array_equal(getattr(digits, part).X, getattr(again, part).X)
        np.testing.assert_array_equal(getattr(digits, part).labels, getattr(again, part).labels)
    assert not np.array_equal(digits.test.X, other.test.X)
    assert other.sizes == digits.sizes


def test_split_indices_partition_and_stratify(digits_raw):
    """The three index sets are disjoint, cover every sample, and each class is split in proportion (±1)."""
    labels = digits_raw[1]
    parts = split_indices(labels.size, 0.1, 0.2, seed=3, labels=labels)
    together = np.concatenate(parts)
    assert together.size == labels.size and np.array_equal(np.sort(together), np.arange(labels.size))
    counts = np.bincount(labels)
    for part, fraction in zip(parts, (0.7, 0.1, 0.2)):
        per_class = np.bincount(labels[part], minlength=10)
        assert np.all(np.abs(per_class - counts * part.size / labels.size) <= 1.0), (fraction, per_class)


def test_split_sizes_round_up_and_reject_empty_training():
    """Test and validation sizes are ceil(n·fraction); fractions leaving no training sample are refused."""
    train, val, test = split_indices(10, 0.15, 0.25, seed=0)
    assert (train.size, val.size, test.size) == (5, 2, 3)
    with pytest.raises(ValueError, match="val_fraction"):
        split_indices(10, 1.5, 0.2, seed=0)
    with pytest.raises(ValueError, match="at least one training sample"):
        split_indices(4, 0.5, 0.5 - 1e-9, seed=0)


def test_apply_scaling_reproduces_the_loaders_X(digits, digits_raw):
    """apply_scaling(raw, ds.scaling) rebuilds ds.X bit for bit, also after a JSON round trip of the record."""
    pixels, labels = digits_raw
    parts = split_indices(labels.size, 0.1, 0.2, seed=0, labels=labels)
    for ds, index in zip((digits.train, digits.validation, digits.test), parts):
        record = json.loads(json.dumps(ds.scaling))
        np.testing.assert_array_equal(apply_scaling(pixels[index].T, record), ds.X)
        np.testing.assert_array_equal(ds.labels, labels[index])


def test_apply_scaling_methods_and_record_errors():
    """The three methods compute what they state; a bad record is refused with the key named."""
    raw = np.array([[0, 8, 16], [2, 4, 6]], dtype=np.uint8)
    np.testing.assert_array_equal(apply_scaling(raw, {"method": "none"}), raw.astype(float))
    np.testing.assert_array_equal(apply_scaling(raw, {"method": "divide", "value": 16}), raw / 16.0)
    std = apply_scaling(raw, {"method": "standardize", "mean": [8, 4], "std": [8, 2]}, dtype=np.float32)
    assert std.dtype == np.float32
    np.testing.assert_array_equal(std, [[-1, 0, 1], [-1, 0, 1]])
    with pytest.raises(ValueError, match=r"scaling\['method'\].*'none'.*got 'log'"):
        check_scaling({"method": "log"})
    with pytest.raises(ValueError, match=r"non-zero divisor"):
        apply_scaling(raw, {"method": "divide", "value": 0})
    with pytest.raises(ValueError, match=r"expected 2 values .*got 3"):
        apply_scaling(raw, {"method": "standardize", "mean": [0, 0, 0], "std": [1, 1, 1]})
    with pytest.raises(ValueError, match=r"scaling\['std'\]: expected positive values, got 0.0 at index 1"):
        check_scaling({"method": "standardize", "mean": [0, 0], "std": [1, 0]})
    with pytest.raises(ValueError, match=r"raw_X: expected a 2-D array"):
        apply_scaling(raw.ravel(), {"method": "none"})


# --------------------------------------------------------------------------- containers and helpers


def test_one_hot_values_and_errors():
    """one_hot puts a 1 at (label, n); labels outside [0, n_classes) name the argument, value and index."""
    T = one_hot(np.array([2, 0, 1, 2]), 3)
    np.testing.assert_array_equal(T, [[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 1]])
    assert T.shape == (3, 4) and T.dtype == np.float64 and T.flags.c_contiguous
    assert one_hot(np.array([1], dtype=np.uint8), 2, dtype=np.float32).dtype == np.float32
    with pytest.raises(ValueError, match=r"labels: expected integers in \[0, 3\), got 5 at index 2"):
        one_hot(np.array([0, 1, 5, 7]), 3)
    with pytest.raises(ValueError, match=r"got -1 at index 0"):
        one_hot(np.array([-1, 0]), 3)
    with pytest.raises(TypeError, match=r"labels: expected dtype"):
        one_hot(np.array([0.0, 1.0]), 3)
    with pytest.raises(ValueError, match=r"n_classes: expected an integer >= 1, got 0"):
        one_hot(np.array([0]), 0)


def test_batches_cover_every_index_once():
    """Shuffled batches hold every index once, are reproducible by seed, and keep order without an rng."""
    got = batches(10, 4, np.random.default_rng(5))
    assert [b.size for b in got] == [4, 4, 2]
    assert np.array_equal(np.sort(np.concatenate(got)), np.arange(10))
    again = batches(10, 4, np.random.default_rng(5))
    assert all(np.array_equal(a, b) for a, b in zip(got, again))
    assert not np.array_equal(np.concatenate(got), np.arange(10))
    assert np.array_equal(np.concatenate(batches(10, 4, None)), np.arange(10))
    assert [b.size for b in batches(10, 4, np.random.default_rng(5), drop_last=True)] == [4, 4]
    with pytest.raises(ValueError, match="batch_size: expected an integer >= 1, got 0"):
        batches(10, 0, None)
    with pytest.raises(TypeError, match="rng: expected a numpy.random.Generator"):
        batches(10, 2, 7)


def test_dataset_is_frozen_readonly_and_converts(digits):
    """Fields cannot be reassigned nor arrays written; astype gives float32 copies; inputs are not mutated."""
    ds = digits.validation
    with pytest.raises(AttributeError):
        ds.X = ds.X
    with pytest.raises(ValueError):
        ds.X[0, 0] = 1.0
    f32 = digits.astype(np.float32)
    assert f32.train.X.dtype == np.float32 and f32.test.T.dtype == np.float32
    np.testing.assert_array_equal(f32.validation.X, ds.X.astype(np.float32))
    X = np.zeros((2, 3))
    Dataset(X, np.zeros((1, 3)), "regression", "tiny", {"method": "none"})
    assert X.flags.writeable
    with pytest.raises(TypeError, match="dtype: expected float32 or float64"):
        ds.astype(np.int32)
    part = ds.subset(np.array([3, 0]))
    np.testing.assert_array_equal(part.X, ds.X[:, [3, 0]])
    np.testing.assert_array_equal(part.labels, ds.labels[[3, 0]])
    assert part.X.flags.c_contiguous and part.T.shape == (10, 2)


def test_split_info_is_plain_json():
    """Splits.info holds plain JSON values even when the caller passed NumPy numbers."""
    s = load_square(n=10, seed=np.int64(4))
    assert s.info["seed"] == 4 and type(s.info["seed"]) is int
    assert json.loads(json.dumps(s.info)) == s.info


def test_dataset_checks_its_fields():
    """A Dataset refuses mismatched targets, labels, image shapes and kinds, naming the field."""
    X, T = np.zeros((4, 3)), np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"T: expected shape \(\*, 3\)"):
        Dataset(X, np.zeros((2, 5)), "regression", "x", {"method": "none"})
    with pytest.raises(ValueError, match="kind: expected one of 'classification', 'regression'"):
        Dataset(X, T, "ranking", "x", {"method": "none"})
    with pytest.raises(ValueError, match=r"image_shape: expected \(C, H, W\) with C·H·W = 4"):
        Dataset(X, T, "regression", "x", {"method": "none"}, image_shape=(1, 3, 3))
    with pytest.raises(ValueError, match=r"T: expected 3 rows"):
        Dataset(X, T, "classification", "x", {"method": "none"}, labels=np.array([0, 1, 2]), n_classes=3)
    with pytest.raises(ValueError, match=r"X: expected finite values"):
        Dataset(np.full((4, 3), np.nan), T, "regression", "x", {"method": "none"})


# --------------------------------------------------------------------------- IDX files


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, suffix, dtype):
    """write_idx then read_idx returns the same values, shape and dtype, raw and gzip."""
    a = (np.arange(2 * 3 * 4) * 7 - 20).astype(dtype).reshape(2, 3, 4)
    if dtype == np.uint8:
        a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4) * 10
    path = write_idx(tmp_path / f"a.idx{suffix}", a)
    b = read_idx(path)
    assert b.dtype == a.dtype and b.dtype.isnative and b.shape == a.shape
    np.testing.assert_array_equal(a, b)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")


def test_idx_reader_follows_the_format_not_the_writer(tmp_path):
    """A file assembled by hand (magic 00 00 0D 02, big-endian dims and float32 values) reads back."""
    values = np.array([[1.5, -2.0, 3.25], [0.0, 1e-3, 7.0]], dtype=">f4")
    (tmp_path / "m.idx").write_bytes(idx_header(0x0D, (2, 3)) + values.tobytes())
    got = read_idx(tmp_path / "m.idx")
    assert got.dtype == np.float32 and got.shape == (2, 3)
    np.testing.assert_array_equal(got, values)
    assert write_idx(tmp_path / "w.idx", values.astype(np.float32)).read_bytes() == (tmp_path / "m.idx").read_bytes()


def test_idx_gzip_detected_by_magic_bytes_not_suffix(tmp_path):
    """Gzip content without a .gz name is decompressed; raw content with a .gz name is read raw."""
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    write_idx(tmp_path / "zipped.idx", a, compress=True)
    write_idx(tmp_path / "plain.gz", a, compress=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "zipped.idx"), a)
    np.testing.assert_array_equal(read_idx(tmp_path / "plain.gz"), a)


@pytest.mark.parametrize("compressed", [False, True])
def test_idx_rejects_wrong_magic_and_dtype_code(tmp_path, compressed):
    """A wrong magic number or an unknown type code is a ValueError naming the file and what was expected."""
    def put(name, payload):
        path = tmp_path / name
        path.write_bytes(gzip.compress(payload) if compressed else payload)
        return path

    path = put("magic.idx", b"\x12\x34\x08\x01" + struct.pack(">I", 2) + b"ab")
    with pytest.raises(ValueError, match=r"magic\.idx.*not an IDX file: expected magic bytes 00 00 <type> <ndim>, got 12 34 08 01"):
        read_idx(path)
    path = put("code.idx", idx_header(0x0A, (2,)) + b"ab")
    with pytest.raises(ValueError, match=r"code\.idx.*unsupported IDX type code: expected one of 0x08 \(uint8\).*got 0x0A"):
        read_idx(path)
    path = put("short.idx", b"\x00\x00\x08\x03" + struct.pack(">I", 2))
    with pytest.raises(ValueError, match=r"short\.idx.*truncated IDX header: expected 16 bytes for 3 dimension\(s\), got 8"):
        read_idx(path)


@pytest.mark.parametrize("compressed", [False, True])
def test_idx_rejects_truncated_data_and_trailing_garbage(tmp_path, compressed):
    """Fewer or more data bytes than the header claims: ValueError giving the claimed and the actual size."""
    header = idx_header(0x08, (4, 5))  # claims 20 bytes
    for name, data, pattern in [
        ("short.idx", bytes(13), r"truncated file or wrong header: .*claims shape \(4, 5\) of uint8 = 20 data bytes.*only 13"),
        ("long.idx", bytes(25), r"trailing garbage: .*= 20 data bytes, but the .*holds"),
    ]:
        payload = header + data
        (tmp_path / name).write_bytes(gzip.compress(payload) if compressed else payload)
        with pytest.raises(ValueError, match=name.replace(".", r"\.") + ".*" + pattern):
            read_idx(tmp_path / name)


def test_idx_raw_trailing_garbage_counts_the_extra_bytes(tmp_path):
    """For a raw file the message states how many bytes are too many."""
    (tmp_path / "x.idx").write_bytes(idx_header(0x08, (3,)) + bytes(3) + b"junk")
    with pytest.raises(ValueError, match=r"holds 7 \(4 bytes too many\)"):
        read_idx(tmp_path / "x.idx")


def test_idx_truncated_gzip_stream(tmp_path):
    """A gzip file cut short (the compressed bytes end early) is a ValueError, not an EOFError."""
    payload = gzip.compress(idx_header(0x08, (1000,)) + np.random.default_rng(0).bytes(1000))
    (tmp_path / "cut.idx.gz").write_bytes(payload[: len(payload) // 2])
    with pytest.raises(ValueError, match=r"cut\.idx\.gz \(gzip\): corrupt or truncated gzip stream"):
        read_idx(tmp_path / "cut.idx.gz")


@pytest.mark.parametrize("compressed", [False, True])
def test_idx_lying_header_fails_fast_without_allocating(tmp_path, compressed):
    """A header claiming 10^12 bytes over a tiny file fails in well under a second with little memory."""
    payload = idx_header(0x08, (1_000_000, 1_000_000)) + bytes(64)
    (tmp_path / "liar.idx").write_bytes(gzip.compress(payload) if compressed else payload)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        for max_bytes in (1 << 31, 10**13):  # refused by the cap, or read until the stream runs dry
            with pytest.raises(ValueError, match=r"liar\.idx.*1000000000000 data bytes"):
                read_idx(tmp_path / "liar.idx", max_bytes=max_bytes)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 1.0
    assert peak < 4 << 20


def test_idx_gzip_bomb_is_cut_at_the_claimed_size(tmp_path):
    """A small gzip file that inflates to 32 MB behind a 100-byte header is refused after 101 bytes."""
    bomb = gzip.compress(idx_header(0x08, (100,)) + bytes(32 << 20), compresslevel=1)
    (tmp_path / "bomb.idx").write_bytes(bomb)
    assert len(bomb) < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"bomb\.idx \(gzip\): trailing garbage"):
            read_idx(tmp_path / "bomb.idx")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


# --------------------------------------------------------------------------- MNIST loader


def fake_mnist(directory, n_train=30, n_test=10, size=(28, 28), gz=(True, False, False, True)):
    """Write four small MNIST-format files (some gzip, some raw) and return their contents."""
    rng = np.random.default_rng(7)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, *size), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, *size), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for (name, a), compress in zip(arrays.items(), gz):
        write_idx(directory / (name + (".gz" if compress else "")), a)
    return list(arrays.values())


def test_load_mnist_on_a_tiny_fake_directory(tmp_path):
    """Train = first images, validation = the last val_size of the training file, test = t10k; X = pixels/255."""
    train_img, train_lab, test_img, test_lab = fake_mnist(tmp_path)
    s = load_mnist(tmp_path, "fashion", val_size=5)
    assert s.sizes == (25, 5, 10)
    assert s.train.name == "fashion" and s.train.image_shape == (1, 28, 28) and s.train.n_classes == 10
    np.testing.assert_array_equal(s.train.images()[0].transpose(2, 0, 1), train_img[:25] / 255.0)
    np.testing.assert_array_equal(s.validation.images()[0].transpose(2, 0, 1), train_img[25:] / 255.0)
    np.testing.assert_array_equal(s.test.X, test_img.reshape(10, 784).T / 255.0)
    np.testing.assert_array_equal(s.validation.labels, train_lab[25:])
    np.testing.assert_array_equal(s.test.labels, test_lab)
    assert s.train.scaling == {"method": "divide", "value": 255.0}
    np.testing.assert_array_equal(apply_scaling(test_img.reshape(10, -1).T, s.test.scaling), s.test.X)
    assert load("mnist", data_dir=tmp_path, val_size=5, dtype=np.float32).test.X.dtype == np.float32


def test_load_mnist_missing_files_are_listed(tmp_path):
    """A directory without the four files gives FileNotFoundError naming the expected and the missing files."""
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert "t10k-labels-idx1-ubyte" in message and "missing train-labels-idx1-ubyte" in message
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="kind: expected one of 'mnist', 'fashion', got 'kmnist'"):
        load_mnist(tmp_path, "kmnist")


def test_load_mnist_checks_labels_against_images(tmp_path):
    """Label count different from the image count, or a label above 9, is a ValueError naming the file."""
    fake_mnist(tmp_path, gz=(False,) * 4)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(9, np.uint8))
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte: expected 10 labels .*got 9"):
        load_mnist(tmp_path, val_size=5)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([0] * 7 + [12, 3, 4], np.uint8))
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte: expected integers in \[0, 10\), got 12 at index 7"):
        load_mnist(tmp_path, val_size=5)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(10, np.uint8))
    with pytest.raises(ValueError, match=r"val_size: expected fewer than the 30 training images of .*train-images-idx3-ubyte, got 30"):
        load_mnist(tmp_path, val_size=30)


# --------------------------------------------------------------------------- CSV


def write_csv(tmp_path, text, name="d.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_csv_classification_standardized_on_train_only(tmp_path):
    """Header detected, labels one-hot, split stratified, standardization from the training split alone."""
    rng = np.random.default_rng(1)
    feats = rng.normal(3.0, 2.0, (40, 3))
    labels = np.repeat([0, 1, 2, 1], 10)
    body = "\n".join(",".join(f"{v:.6f}" for v in row) + f",{lab}" for row, lab in zip(feats, labels))
    path = write_csv(tmp_path, "a,b,c,label\n# a comment\n\n" + body + "\n")
    s = load_csv(path, target_columns="label", seed=2)
    assert s.sizes == (28, 4, 8) and s.train.n_classes == 3 and s.train.X.shape == (3, 28)
    assert s.info["feature_names"] == ["a", "b", "c"] and s.info["method"] == "stratified"
    np.testing.assert_allclose(s.train.X.mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(s.train.X.std(axis=1), 1.0, rtol=1e-12)
    assert not np.allclose(s.test.X.mean(axis=1), 0.0, atol=1e-12)
    assert np.bincount(s.test.labels).tolist() == [2, 4, 2]
    parsed = np.loadtxt(path, delimiter=",", skiprows=1)
    parts = split_indices(40, 0.1, 0.2, seed=2, labels=labels)
    np.testing.assert_array_equal(apply_scaling(parsed[parts[2], :3].T, json.loads(json.dumps(s.test.scaling))), s.test.X)
    same = load_csv(path, target_columns=-1, seed=2, scaling=s.train.scaling)
    np.testing.assert_array_equal(same.validation.X, s.validation.X)


def test_load_csv_regression_with_several_targets(tmp_path):
    """Regression targets are taken as they are, several columns by index, no header, optional raw inputs."""
    rows = [(x, 2 * x, x * x, 1 - x) for x in np.linspace(0, 1, 10)]
    path = write_csv(tmp_path, "\n".join(";".join(str(v) for v in r) for r in rows))
    s = load_csv(path, target_columns=[2, 3], kind="regression", delimiter=";", standardize=False, val_fraction=0.0)
    assert s.sizes == (8, 0, 2) and s.train.T.shape == (2, 8) and s.train.X.shape == (2, 8)
    np.testing.assert_array_equal(s.train.T[0], s.train.X[0] ** 2)
    assert s.train.scaling == {"method": "none"} and s.train.labels is None and s.train.kind == "regression"


@pytest.mark.parametrize(
    "text, options, pattern",
    [
        ("1,2,0\n3,x7,1\n", {}, r"line 2, column 2: expected a number, got 'x7'"),
        ("1,2,0\n3,4\n5,6,1\n", {}, r"ragged rows: expected 3 columns \(as on line 1\), got 2 on line 2"),
        ("1,2,0\n3,,1\n", {}, r"line 2, column 2: expected a number, got ''"),
        ("1,2,0\n3,nan,1\n", {}, r"line 2, column 2: expected a finite number, got nan"),
        ("", {}, r"expected at least one data row, got an empty file"),
        ("# only a comment\n\n", {}, r"got an empty file"),
        ("a,b,c\n", {}, r"at least one data row after the header"),
        ("1,2,0\n3,4,1.5\n5,6,1\n7,8,0\n", {}, r"line 2, column 3: expected an integer class label in \[0, 2\), got 1.5"),
        ("1,2,0\n3,4,-1\n5,6,1\n", {}, r"line 2, column 3: expected an integer class label"),
        ("1,2,0\n3,4,1\n", {"target_columns": 5}, r"target_columns: expected indices in \[-3, 3\)"),
        ("1,2,0\n3,4,1\n", {"target_columns": "y"}, r"target_columns: .*got 'y'; the file has no header"),
        ("1,2,0\n3,4,1\n", {"kind": "ranking"}, r"kind: expected one of 'classification', 'regression'"),
        ("1,2,0\n3,4,1\n", {"kind": "regression", "n_classes": 2}, r"n_classes: expected None for kind='regression'"),
        ("1,2,7\n3,4,5000\n5,6,1\n", {}, r"labels up to 5000: expected at most 1000 classes; pass kind='regression'"),
    ],
)
def test_load_csv_errors(tmp_path, text, options, pattern):
    """Each malformed CSV is a ValueError naming the file (or argument), the line and column where it applies."""
    path = write_csv(tmp_path, text)
    with pytest.raises(ValueError, match=pattern):
        load_csv(path, **options)


def test_load_csv_missing_file(tmp_path):
    """A path that does not exist raises FileNotFoundError."""
    with pytest.raises(FileNotFoundError):
        load_csv(tmp_path / "none.csv")


# --------------------------------------------------------------------------- seed 003 sets


def test_square_shapes_targets_and_determinism():
    """x² set: X and T of shape (1, N), T = X² exactly, x in [-1, 1], 700/100/200, reproducible by seed."""
    s = load_square()
    assert s.sizes == (700, 100, 200)
    for ds in (s.train, s.validation, s.test):
        assert ds.X.shape == ds.T.shape == (1, ds.n_samples) and ds.kind == "regression"
        np.testing.assert_array_equal(ds.T, ds.X**2)
        assert -1.0 <= ds.X.min() and ds.X.max() <= 1.0
    np.testing.assert_array_equal(load_square(seed=0).test.X, s.test.X)
    assert not np.array_equal(load_square(seed=1).test.X, s.test.X)
    assert load_square(n=20, low=0.0, high=2.0).train.X.min() >= 0.0


def test_sphere_shapes_and_targets_on_the_unit_sphere():
    """Sphere set: angles (2, N) scaled by 1/π map to unit points (3, N); sizes 1400/200/400; seeded."""
    s = load_sphere()
    assert s.sizes == (1400, 200, 400)
    for ds in (s.train, s.validation, s.test):
        assert ds.X.shape == (2, ds.n_samples) and ds.T.shape == (3, ds.n_samples)
        np.testing.assert_allclose(np.linalg.norm(ds.T, axis=0), 1.0, rtol=1e-14)
        np.testing.assert_allclose(ds.T, sphere_point(ds.X * math.pi), atol=1e-14)
        assert 0.0 <= ds.X[0].min() and ds.X[0].max() <= 1.0 and -1.0 <= ds.X[1].min() and ds.X[1].max() < 1.0
    assert s.train.scaling == {"method": "divide", "value": math.pi}
    z = s.train.T[2]  # uniform over the surface: z is uniform on [-1, 1]
    assert abs(z.mean()) < 0.1 and abs((np.abs(z) < 0.5).mean() - 0.5) < 0.1
    np.testing.assert_array_equal(load_sphere(seed=0).validation.T, s.validation.T)


def test_load_dispatch_lists_the_choices():
    """load(name) calls the named loader; an unknown name is a ValueError listing all six."""
    assert load("square", n=20).sizes == (14, 2, 4)
    with pytest.raises(ValueError, match="name: expected one of 'digits', 'mnist', 'fashion', 'square', 'sphere', 'csv', got 'cifar'"):
        load("cifar")
