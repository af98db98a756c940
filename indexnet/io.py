"""Model and checkpoint files: ``.npz`` written atomically, read without pickle.

A file holds plain arrays plus one JSON document (stored as a unicode array under the
key ``__meta__``): the format name and version, the architecture, the dtype and
whatever the caller adds (data scaling, optimiser state names, history). Writing goes
to a temporary file in the same folder, is flushed to disk, and is then renamed over
the target, so a crash mid-write leaves the previous file intact.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

FORMAT = "indexnet"
FORMAT_VERSION = 1
META_KEY = "__meta__"


def write_atomic(path, write) -> Path:
    """Call ``write(fh)`` on a temporary file beside ``path``, flush it to disk, then rename
    it over ``path``: readers see the old file or the new one, never a torn one.

    The file gets mode 0644 (``mkstemp``'s 0600 would make models and plots private). On
    any exception the temporary file is removed and the previous ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o644)
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_bytes_atomic(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`write_atomic`)."""
    return write_atomic(path, lambda fh: fh.write(data))


def save_npz_atomic(path, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Write ``arrays`` and the JSON ``meta`` to ``path`` atomically; return the path.

    Raises
    ------
    TypeError
        An array of dtype object (it would need pickle), or meta that is not JSON.
    """
    for key, arr in arrays.items():
        if key == META_KEY:
            raise ValueError(f"arrays: the key {META_KEY!r} is reserved")
        if np.asarray(arr).dtype == object:
            raise TypeError(f"arrays[{key!r}]: expected a numeric array, got dtype object (needs pickle)")
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta}
    text = json.dumps(doc, sort_keys=True)
    return write_atomic(path, lambda fh: np.savez(fh, **{META_KEY: np.array(text)}, **arrays))


def check_file(path, what: str = "model file") -> Path:
    """``path`` names a readable regular file; a clear ValueError / FileNotFoundError otherwise.

    Distinguishes a missing file, a folder, a symbolic-link loop and a broken link.
    """
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise FileNotFoundError(f"{what}: {path} is a symbolic link to {os.readlink(path)}, which does not exist") from None
        raise FileNotFoundError(f"{what}: {path} does not exist") from None
    except OSError as exc:  # ELOOP and the like
        if exc.errno == 40:
            raise ValueError(f"{what}: {path} is a loop of symbolic links; expected a file") from None
        raise ValueError(f"{what}: cannot read {path} ({exc.strerror or exc})") from None
    import stat

    if stat.S_ISDIR(st.st_mode):
        raise ValueError(f"{what}: {path} is a folder; expected a file")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{what}: {path} is not a regular file")
    return path


def load_npz(path, what: str = "model file") -> tuple[dict[str, np.ndarray], dict]:
    """Read a file written by :func:`save_npz_atomic`: ``(arrays, meta)``.

    Never unpickles, and never passes on NumPy's advice to load a file "unsafely".

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        A folder, a symbolic-link loop, not an .npz archive (e.g. a renamed .npy),
        not an indexnet file, metadata that is not a JSON object, a ``format_version``
        that is not an integer or is newer than this version reads, or a damaged archive.
    """
    path = check_file(path, what)
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic == b"\x93NUMPY":
        raise ValueError(f"{what}: {path} is a single NumPy array (.npy), not an .npz archive written by indexnet")
    if magic[:4] != b"PK\x03\x04" and magic[:4] != b"PK\x05\x06":
        raise ValueError(f"{what}: {path} is not an .npz (zip) archive; expected a file written by indexnet")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        reason = "it holds an object array (pickled data), which indexnet never reads" if "pickle" in str(exc) else \
            f"{type(exc).__name__}: {exc}"
        raise ValueError(f"{what}: {path} is not a readable .npz archive ({reason})") from None
    if META_KEY not in arrays:
        raise ValueError(f"{what}: {path} has no {META_KEY!r} entry; not written by indexnet")
    try:
        meta = json.loads(str(arrays.pop(META_KEY)))
    except ValueError as exc:
        raise ValueError(f"{what}: {path}: its {META_KEY!r} entry is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{what}: {path}: expected its {META_KEY!r} entry to be a JSON object, got a "
                         f"JSON {type(meta).__name__}")
    if meta.get("format") != FORMAT:
        raise ValueError(f"{what}: {path}: expected format {FORMAT!r}, got {meta.get('format')!r}")
    version = meta.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"{what}: {path}: expected an integer format_version, got {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{what}: {path}: format version {version} is newer than this "
            f"indexnet reads ({FORMAT_VERSION}); upgrade indexnet"
        )
    return arrays, meta


def network_to_arrays(net) -> tuple[dict[str, np.ndarray], dict]:
    """The parameters as ``layer{l}.{name}`` arrays and the architecture as JSON-able meta."""
    arrays = {
        f"layer{l}.{name}": arr
        for l, (layer, p) in enumerate(zip(net.layers, net.params), start=1)
        for name, arr in zip(layer.param_names, p)
    }
    meta = {
        "architecture": {
            "input_shape": list(net.input_shape),
            "layers": [layer.to_config() for layer in net.layers],
            "loss": net.loss_fn.name,
            "dtype": str(net.dtype),
        }
    }
    return arrays, meta


def network_from_arrays(arrays: dict[str, np.ndarray], meta: dict):
    """Rebuild the network that :func:`network_to_arrays` described."""
    from indexnet.nn.layers import layer_from_config
    from indexnet.nn.network import Network

    arch = meta.get("architecture")
    if not isinstance(arch, dict):
        raise ValueError("model file: the metadata lacks an 'architecture' object (input_shape, layers, loss, "
                         f"dtype); got {type(arch).__name__ if arch is not None else 'none'}")
    missing = [k for k in ("input_shape", "layers", "loss", "dtype") if k not in arch]
    if missing:
        raise ValueError(f"model file: the architecture lacks {missing}")
    if not isinstance(arch["layers"], list) or not all(isinstance(c, dict) for c in arch["layers"]):
        raise ValueError(f"model file: expected architecture.layers to be a list of objects, got {arch['layers']!r:.80}")
    try:
        layers = [layer_from_config(c) for c in arch["layers"]]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"model file: a layer of the architecture is malformed ({type(exc).__name__}: {exc})") from None
    params = []
    for l, layer in enumerate(layers, start=1):
        missing = [f"layer{l}.{n}" for n in layer.param_names if f"layer{l}.{n}" not in arrays]
        if missing:
            raise ValueError(f"model file: missing parameter arrays {missing}")
        params.append(tuple(np.ascontiguousarray(arrays[f"layer{l}.{n}"]) for n in layer.param_names))
    try:
        return Network(layers, tuple(arch["input_shape"]), arch["loss"], dtype=np.dtype(arch["dtype"]), params=params)
    except TypeError as exc:
        raise ValueError(f"model file: the architecture does not describe a network ({exc})") from None


def save_model(net, path, **meta) -> Path:
    """Save a network (architecture, dtype, parameters) plus extra JSON ``meta`` (e.g. scaling)."""
    arrays, doc = network_to_arrays(net)
    return save_npz_atomic(path, arrays, {**doc, "kind": "model", **meta})


def load_model(path):
    """Load ``(network, meta)`` from a file written by :func:`save_model` or a checkpoint."""
    arrays, meta = load_npz(path)
    model_arrays = {k: v for k, v in arrays.items() if k.startswith("layer")}
    return network_from_arrays(model_arrays, meta), meta
