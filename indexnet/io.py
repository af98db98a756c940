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


def load_npz(path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a file written by :func:`save_npz_atomic`: ``(arrays, meta)``.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not an indexnet file, a newer format version, or a damaged archive.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file: {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ValueError(f"model file: {path} is not a readable .npz archive ({exc})") from exc
    if META_KEY not in arrays:
        raise ValueError(f"model file: {path} has no {META_KEY!r} entry; not written by indexnet")
    meta = json.loads(str(arrays.pop(META_KEY)))
    if meta.get("format") != FORMAT:
        raise ValueError(f"model file: {path}: expected format {FORMAT!r}, got {meta.get('format')!r}")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"model file: {path}: format version {meta['format_version']} is newer than this "
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

    arch = meta["architecture"]
    layers = [layer_from_config(c) for c in arch["layers"]]
    params = []
    for l, layer in enumerate(layers, start=1):
        missing = [f"layer{l}.{n}" for n in layer.param_names if f"layer{l}.{n}" not in arrays]
        if missing:
            raise ValueError(f"model file: missing parameter arrays {missing}")
        params.append(tuple(np.ascontiguousarray(arrays[f"layer{l}.{n}"]) for n in layer.param_names))
    return Network(layers, tuple(arch["input_shape"]), arch["loss"], dtype=np.dtype(arch["dtype"]), params=params)


def save_model(net, path, **meta) -> Path:
    """Save a network (architecture, dtype, parameters) plus extra JSON ``meta`` (e.g. scaling)."""
    arrays, doc = network_to_arrays(net)
    return save_npz_atomic(path, arrays, {**doc, "kind": "model", **meta})


def load_model(path):
    """Load ``(network, meta)`` from a file written by :func:`save_model` or a checkpoint."""
    arrays, meta = load_npz(path)
    model_arrays = {k: v for k, v in arrays.items() if k.startswith("layer")}
    return network_from_arrays(model_arrays, meta), meta
