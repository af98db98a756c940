"""IDX files (the MNIST and Fashion-MNIST format): a checked reader, a writer, and
the MNIST loader.

The format: four magic bytes ``00 00 <type> <ndim>``, then ``ndim`` big-endian uint32
extents, then the values in C order, big-endian. Type codes: 0x08 uint8, 0x09 int8,
0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64. Files may be gzip-compressed;
:func:`read_idx` recognises gzip by its magic bytes ``1f 8b``, not by the file name.

The reader checks the header before it allocates anything: the number of data bytes
the header claims (product of the extents × item size) must equal the bytes the file
actually holds. For a raw file that is a comparison with the file size; for a gzip
file the decompressed stream is read in chunks and never beyond the claimed size + 1
byte, so a lying header or a decompression bomb cannot make it allocate more than the
file really contains, and claims above ``max_bytes`` are refused outright.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from indexnet._validate import check_choice, check_positive_int

from .dataset import Splits, check_labels, make_splits

#: IDX type code -> big-endian dtype of the stored values.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"
#: Default ceiling on the data one IDX file may claim (2 GiB; MNIST's largest is 47 MB).
DEFAULT_MAX_BYTES = 1 << 31
_CHUNK = 1 << 20

#: The four standard file names (MNIST and Fashion-MNIST use the same ones).
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
MNIST_KINDS = ("mnist", "fashion")


def _read_capped(stream: BinaryIO, cap: int) -> bytearray:
    """Read at most ``cap`` bytes in chunks; memory grows only with what is really there."""
    buf = bytearray()
    while len(buf) < cap:
        chunk = stream.read(min(_CHUNK, cap - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def _parse(stream: BinaryIO, where: str, file_size: int | None, max_bytes: int) -> np.ndarray:
    """Header checks, then the data; ``file_size`` is None for a compressed stream."""
    magic = _read_capped(stream, 4)
    if len(magic) < 4:
        raise ValueError(f"{where}: truncated IDX header: expected 4 magic bytes, got {len(magic)} byte(s)")
    if magic[:2] != b"\x00\x00":
        raise ValueError(
            f"{where}: not an IDX file: expected magic bytes 00 00 <type> <ndim>, got {magic.hex(' ')}"
        )
    code, ndim = magic[2], magic[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X} ({d.name})" for c, d in IDX_DTYPES.items())
        raise ValueError(f"{where}: unsupported IDX type code: expected one of {known}, got 0x{code:02X}")
    if ndim == 0:
        raise ValueError(f"{where}: expected at least 1 dimension in the IDX header, got 0")
    raw_dims = _read_capped(stream, 4 * ndim)
    header = 4 + 4 * ndim
    if len(raw_dims) < 4 * ndim:
        raise ValueError(
            f"{where}: truncated IDX header: expected {header} bytes for {ndim} dimension(s), "
            f"got {4 + len(raw_dims)}"
        )
    dims = struct.unpack(f">{ndim}I", raw_dims)
    dtype = IDX_DTYPES[code]
    claimed = math.prod(dims) * dtype.itemsize  # Python int: no overflow
    claim = f"the header claims shape {dims} of {dtype.name} = {claimed} data bytes"
    if file_size is not None:
        available = file_size - header
        if available < claimed:
            raise ValueError(
                f"{where}: truncated file or wrong header: {claim}, but the file holds only "
                f"{available} after its {header}-byte header ({file_size} bytes in all)"
            )
        if available > claimed:
            raise ValueError(
                f"{where}: trailing garbage: {claim}, but the file holds {available} "
                f"({available - claimed} bytes too many)"
            )
    if claimed > max_bytes:
        raise ValueError(
            f"{where}: {claim}, more than max_bytes={max_bytes}; pass a larger max_bytes if this is real"
        )
    data = _read_capped(stream, claimed + 1)
    if len(data) < claimed:
        raise ValueError(
            f"{where}: truncated file or wrong header: {claim}, but the decompressed stream "
            f"holds only {len(data)}"
        )
    if len(data) > claimed:
        raise ValueError(f"{where}: trailing garbage: {claim}, but the decompressed stream holds more")
    native = dtype.newbyteorder("=")
    if claimed == 0:
        return np.zeros(dims, dtype=native)
    arr = np.frombuffer(data, dtype=dtype).reshape(dims)
    return arr if arr.dtype == native else arr.astype(native)


def read_idx(path: str | os.PathLike, *, max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """Read one IDX file, raw or gzip-compressed.

    Parameters
    ----------
    path : str or path-like
        The file. Gzip is detected by the magic bytes ``1f 8b``, whatever the suffix.
    max_bytes : int
        Refuse files whose header claims more data bytes than this (default 2 GiB).

    Returns
    -------
    ndarray
        Shape as in the header, values in native byte order (uint8 for MNIST).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Wrong magic number, unsupported type code, truncated header or data, a header
        claiming more (or less) data than the file holds, trailing bytes, a claim over
        ``max_bytes`` or a corrupt gzip stream. The message names the file and the
        expected and actual sizes.
    """
    max_bytes = check_positive_int("max_bytes", max_bytes, minimum=0)
    path = Path(path)
    with open(path, "rb") as f:
        compressed = f.read(2) == GZIP_MAGIC
        f.seek(0)
        if not compressed:
            return _parse(f, str(path), os.fstat(f.fileno()).st_size, max_bytes)
        where = f"{path} (gzip)"
        with gzip.GzipFile(fileobj=f, mode="rb") as stream:
            try:
                return _parse(stream, where, None, max_bytes)
            except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
                raise ValueError(f"{where}: corrupt or truncated gzip stream: {exc}") from exc


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file (the inverse of :func:`read_idx`).

    Parameters
    ----------
    path : str or path-like
    array : ndarray
        dtype uint8, int8, int16, int32, float32 or float64; 1 to 255 dimensions.
    compress : bool, optional
        Gzip the file; default: when ``path`` ends in ``.gz``.

    Returns
    -------
    Path
        The path written.
    """
    path = Path(path)
    if not isinstance(array, np.ndarray):
        raise TypeError(f"array: expected a numpy.ndarray, got {type(array).__name__}")
    codes = {d.newbyteorder("="): c for c, d in IDX_DTYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        names = ", ".join(d.name for d in IDX_DTYPES.values())
        raise TypeError(f"array: expected dtype {names}, got {array.dtype}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"array: expected 1 to 255 dimensions, got {array.ndim}")
    payload = (
        bytes([0, 0, code, array.ndim])
        + struct.pack(f">{array.ndim}I", *array.shape)
        + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    )
    if compress if compress is not None else path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)
    return path


def _find_files(data_dir: Path) -> list[Path]:
    """The four standard files in ``data_dir`` (each raw or ``.gz``), or FileNotFoundError.

    A candidate that exists but is a folder, a symbolic-link loop or a broken link is a
    ValueError naming it (not "missing").
    """
    from indexnet.io import check_file

    if data_dir.exists() and not data_dir.is_dir():
        raise ValueError(f"data_dir: expected a folder holding the four IDX files, got {data_dir}, which is a file")
    found, missing = [], []
    for base in MNIST_FILES:
        candidates = [data_dir / base, data_dir / (base + ".gz")]
        for p in candidates:
            if os.path.lexists(p):
                check_file(p, "data_dir")  # a folder or a link loop says so
        hit = next((p for p in candidates if p.is_file()), None)
        found.append(hit)
        if hit is None:
            missing.append(base)
    if missing:
        present = sorted(p.name for p in data_dir.iterdir())[:10] if data_dir.is_dir() else None
        raise FileNotFoundError(
            f"data_dir: expected the four IDX files {', '.join(MNIST_FILES)} (each optionally .gz) "
            f"in {data_dir}, missing {', '.join(missing)}; "
            + ("the directory does not exist" if present is None else f"it holds {present or 'nothing'}")
        )
    return found


def _read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W) uint8 and labels (N,) uint8 in 0..9, checked against each other."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{images_path}: expected uint8 images of shape (N, H, W), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise ValueError(f"{labels_path}: expected uint8 labels of shape (N,), got {labels.dtype} {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{labels_path}: expected {images.shape[0]} labels (one per image of {images_path.name}), "
            f"got {labels.shape[0]}"
        )
    check_labels(labels, 10, name=str(labels_path))
    return images, labels


def load_mnist(
    data_dir: str | os.PathLike,
    kind: str = "mnist",
    *,
    val_size: int | None = None,
    val_fraction: float | None = None,
    dtype=np.float64,
) -> Splits:
    """MNIST or Fashion-MNIST from the four standard IDX files in ``data_dir``.

    Reads ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each raw or ``.gz``.

    Split (fixed, no randomness): the validation set is the **last** ``val_size``
    images of the training file, the training set the ones before it, the test set the
    t10k file. For the standard files: 55000 / 5000 / 10000. ``val_size`` None: 5000
    when the training file holds 50 000 images or more, else ``ceil(val_fraction · N)``
    with ``val_fraction`` 0.1 by default.

    Inputs: ``X = pixels / 255`` (scaling ``{"method": "divide", "value": 255.0}``),
    shape (784, N), ``image_shape = (1, 28, 28)``; targets one-hot over 10 classes.

    Parameters
    ----------
    data_dir : str or path-like
        Directory holding the four files.
    kind : {"mnist", "fashion"}
        Which set the files are (it only names the data set; the format is the same).
    val_size : int, optional
        Validation images taken from the end of the training file.
    val_fraction : float, optional
        The same as a fraction in [0, 1) of the training file (not with ``val_size``).
    dtype : float32 or float64

    Raises
    ------
    FileNotFoundError
        A file is missing (the message lists the expected names).
    ValueError
        A malformed file, labels that do not match the images in count, labels outside
        0..9, test images of another size, or ``val_size`` not less than the training
        set.
    """
    check_choice("kind", kind, MNIST_KINDS)
    if val_size is not None and val_fraction is not None:
        raise ValueError(f"val_size, val_fraction: expected one of them, got both ({val_size}, {val_fraction})")
    if val_size is not None:
        val_size = check_positive_int("val_size", val_size, minimum=0)
    if val_fraction is not None and not (isinstance(val_fraction, (int, float)) and 0 <= val_fraction < 1):
        raise ValueError(f"val_fraction: expected a number in [0, 1), got {val_fraction!r}")
    tr_img, tr_lab, te_img, te_lab = _find_files(Path(data_dir))
    train_images, train_labels = _read_pair(tr_img, tr_lab)
    test_images, test_labels = _read_pair(te_img, te_lab)
    if test_images.shape[1:] != train_images.shape[1:]:
        raise ValueError(
            f"{te_img}: expected images of size {train_images.shape[1:]} like the training file, "
            f"got {test_images.shape[1:]}"
        )
    n_train, n_test = train_images.shape[0], test_images.shape[0]
    if val_size is None:
        if val_fraction is None and n_train >= 50000:
            val_size = 5000
        else:
            val_size = math.ceil(n_train * (0.1 if val_fraction is None else val_fraction))
    if val_size >= n_train:
        raise ValueError(f"val_size: expected fewer than the {n_train} training images of {tr_img}, got {val_size}")
    if n_test == 0:
        raise ValueError(f"{te_img}: expected at least one test image, got an empty file (0 images)")
    h, w = train_images.shape[1:]
    raw_X = np.concatenate([train_images, test_images]).reshape(n_train + n_test, h * w).T
    labels = np.concatenate([train_labels, test_labels])
    cut = n_train - val_size
    parts = (np.arange(cut), np.arange(cut, n_train), np.arange(n_train, n_train + n_test))
    info = {"method": "fixed", "validation": f"last {val_size} of the training file", "data_dir": str(data_dir)}
    return make_splits(
        raw_X, parts, info, labels=labels, name=kind, scaling={"method": "divide", "value": 255.0},
        n_classes=10, image_shape=(1, h, w), dtype=dtype,
    )
