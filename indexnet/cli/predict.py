"""``indexnet predict MODEL INPUT``: predictions for new inputs, as CSV.

MODEL is a run folder or a model file. INPUT holds raw inputs (as in the training
files), one sample per row: a CSV file (numbers only; a header is allowed; a file with
the training CSV's columns, target included, is read by the stored column layout), an
IDX images file (raw or .gz), or a .npy array of shape (N, features) or (N, H, W).
The output (--out FILE, default standard output) has one row per sample: for a
classifier the predicted class, its name and the probability of each class; for a
regression model the outputs.
"""
from __future__ import annotations

from indexnet.cli import plain_text

import csv
import io
import sys
from pathlib import Path

import numpy as np


def add_parser(sub, name: str, help_text: str):
    p = sub.add_parser(name, help=help_text, description=plain_text(__doc__.split("\n\n")[1]))
    p.add_argument("model", help="a run folder or a model .npz written by indexnet train")
    p.add_argument("input", help="raw inputs: a CSV file, an IDX images file or a .npy array, one sample per row")
    p.add_argument("--out", default=None, help="CSV file to write (default: standard output)")
    p.add_argument("--engine", default="fast", choices=("fast", "loops", "numpy"),
                   help="engine of the forward passes (default fast)")
    return p


def read_inputs(path: Path, model) -> np.ndarray:
    """Raw inputs, one sample per row, from a CSV, IDX or .npy file."""
    from indexnet.data import read_idx
    from indexnet.data.tabular import read_table, table_numbers
    from indexnet.io import check_file

    path = check_file(path, "INPUT")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic == b"\x93NUMPY":
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f"INPUT: {path} is a .npy file that is not a numeric array ({exc.__class__.__name__})"
                             ) from None
    if magic[:2] == b"\x1f\x8b" or magic[:2] == b"\x00\x00":
        return read_idx(path)
    names, rows, cells = read_table(path, ",", None)
    split = model.meta.get("data", {}).get("split", {})
    features = split.get("feature_columns")
    n_columns = len(features or []) + len(split.get("target_columns") or [])
    width = len(cells[0])
    if features and width != model.n_features and width == n_columns:
        return table_numbers(path, rows, cells, features)  # the training file's layout: skip the target column(s)
    return table_numbers(path, rows, cells)


def write_predictions(model, X: np.ndarray, out, engine: str) -> None:
    """One CSV row per sample: class, name and probabilities, or the regression outputs."""
    outputs = model.outputs(X, engine=engine)
    writer = csv.writer(out, lineterminator="\n")
    if model.kind == "classification":
        names = model.class_names
        writer.writerow(["row", "class", "name"] + [f"p_{n}" for n in names])
        for i, p in enumerate(outputs):
            k = int(np.argmax(p))
            writer.writerow([i + 1, k, names[k]] + [f"{v:.6g}" for v in p])
    else:
        writer.writerow(["row"] + [f"output_{j + 1}" for j in range(outputs.shape[1])])
        for i, y in enumerate(outputs):
            writer.writerow([i + 1] + [f"{v:.8g}" for v in y])


def run(args) -> int:
    from indexnet.model import load_model
    from indexnet.io import write_bytes_atomic

    try:
        model = load_model(args.model)
        X = read_inputs(Path(args.input), model)
        buf = io.StringIO()
        write_predictions(model, X, buf, args.engine)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"indexnet predict: error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        write_bytes_atomic(args.out, buf.getvalue().encode("utf-8"))
        print(f"wrote: {args.out} ({X.shape[0]} rows)", file=sys.stderr)
    else:
        try:
            sys.stdout.write(buf.getvalue())
            sys.stdout.flush()
        except BrokenPipeError:
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
