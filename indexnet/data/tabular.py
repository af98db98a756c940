"""A user's own numeric CSV file as a data set (NumPy only, no pandas).

Each row is one sample; ``target_columns`` pick the targets, every other column is an
input feature. Rows and columns in error messages are counted from 1 as a text editor
shows them (``line`` is the line of the file).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from indexnet._validate import check_choice, check_positive_int

from .dataset import KINDS, Splits, make_splits, split_indices, standardize_scaling

#: Largest class count inferred from a label column without an explicit ``n_classes``
#: (a larger one is more likely a numeric target loaded with the default kind).
MAX_INFERRED_CLASSES = 1000


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _diagnose(path: Path, rows: Sequence[tuple[int, str]], delimiter: str, exc: Exception) -> ValueError:
    """Find the first ragged row or non-numeric cell that made ``np.loadtxt`` fail."""
    width = None
    for lineno, text in rows:
        cells = text.split(delimiter)
        if width is None:
            width, first = len(cells), lineno
        if len(cells) != width:
            return ValueError(
                f"{path}: ragged rows: expected {width} columns (as on line {first}), "
                f"got {len(cells)} on line {lineno}"
            )
        for col, cell in enumerate(cells, start=1):
            if not _is_number(cell.strip()):
                return ValueError(f"{path}: line {lineno}, column {col}: expected a number, got {cell.strip()!r}")
    return ValueError(f"{path}: could not read the numbers: {exc}")


def _read_lines(path: Path, delimiter: str) -> list[tuple[int, str]]:
    """The non-blank, comment-free lines of a CSV file with their line numbers.

    Raises
    ------
    FileNotFoundError, ValueError
        A missing file, a folder, a file that is not UTF-8 text (naming the line), a
        byte-order mark, or semicolon-separated cells in a comma-separated read.
    """
    from indexnet.io import check_file

    path = check_file(path, "csv file")
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raise ValueError(f"{path}: line 1 starts with a UTF-8 byte-order mark (BOM); save the file as UTF-8 "
                         "without a BOM")
    rows = []
    for lineno, line in enumerate(raw.splitlines(), start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: line {lineno}, byte {exc.start + 1}: not UTF-8 text "
                             f"(byte 0x{line[exc.start]:02x}); save the file as UTF-8") from None
        text = text.split("#", 1)[0].strip()
        if text:
            rows.append((lineno, text))
    if not rows:
        raise ValueError(f"{path}: expected at least one data row, got an empty file")
    lineno, first = rows[-1]
    if delimiter == "," and "," not in first and ";" in first:
        raise ValueError(f"{path}: line {lineno} separates its cells with ';'; expected comma-separated "
                         "values (replace the semicolons by commas)")
    return rows


def _split_cells(path: Path, rows, delimiter: str) -> list[list[str]]:
    """Each row's cells, stripped; quoted cells are refused with their line and column."""
    out = []
    for lineno, text in rows:
        cells = [c.strip() for c in text.split(delimiter)]
        for col, cell in enumerate(cells, start=1):
            if cell[:1] in "\"'" and cell:
                raise ValueError(f"{path}: line {lineno}, column {col}: quoted value {cell}; expected plain "
                                 "unquoted values (remove the quotes)")
        out.append(cells)
    return out


def _header(path: Path, rows, cells, header: bool | None, text_columns: int = 0):
    """``(names or None, rows, cells)`` with the header row split off."""
    first = cells[0]
    numeric = [_is_number(c) for c in first]
    if header or (header is None and not any(numeric)):
        if len(rows) < 2:
            raise ValueError(f"{path}: expected at least one data row after the header, got none")
        return first, rows[1:], cells[1:]
    return None, rows, cells


def table_numbers(path: Path, rows, cells, columns: list[int] | None = None) -> np.ndarray:
    """The cells (of ``columns``, default all) as float64, naming the first bad cell's line and column."""
    width = len(cells[0])
    first = rows[0][0]
    for (lineno, _), row in zip(rows, cells):
        if len(row) != width:
            raise ValueError(
                f"{path}: ragged rows: expected {width} columns (as on line {first}), got {len(row)} on line {lineno}"
            )
    columns = list(range(width)) if columns is None else columns
    data = np.empty((len(cells), len(columns)))
    for r, ((lineno, _), row) in enumerate(zip(rows, cells)):
        for j, col in enumerate(columns):
            try:
                data[r, j] = float(row[col])
            except ValueError:
                raise ValueError(f"{path}: line {lineno}, column {col + 1}: expected a number, got {row[col]!r}") from None
    bad = np.argwhere(~np.isfinite(data))
    if bad.size:
        r, j = (int(i) for i in bad[0])
        raise ValueError(f"{path}: line {rows[r][0]}, column {columns[j] + 1}: expected a finite number, "
                         f"got {data[r, j]}")
    return data


def read_csv(
    path: str | os.PathLike, *, delimiter: str = ",", header: bool | None = None
) -> tuple[list[str] | None, np.ndarray, list[int]]:
    """Read a numeric CSV file.

    Blank lines and ``#`` comments are skipped.

    Parameters
    ----------
    path : str or path-like
    delimiter : str
    header : bool or None
        Whether the first row names the columns; ``None`` decides by looking: the first
        row is a header when none of its cells is a number.

    Returns
    -------
    names : list of str or None
        Column names from the header.
    data : ndarray of float64, shape (rows, columns)
        Samples first, as in the file.
    lines : list of int
        The file line of each row of ``data`` (for error messages).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        A folder, an empty file (or a header alone), text that is not UTF-8 (naming the
        line), a byte-order mark, semicolon-separated cells, quoted cells, ragged rows,
        a non-numeric cell or a NaN/Inf value; the message names the line and column.
    """
    names, rows, cells = read_table(Path(path), delimiter, header)
    data = table_numbers(Path(path), rows, cells)
    return names, data, [lineno for lineno, _ in rows]


def read_table(path: Path, delimiter: str, header: bool | None):
    """``(names or None, rows, cells)``: the checked lines of a CSV file split into stripped cells."""
    rows = _read_lines(path, delimiter)
    cells = _split_cells(path, rows, delimiter)
    names, rows, cells = _header(path, rows, cells, header)
    if names is not None and len(names) != len(cells[0]):
        raise ValueError(f"{path}: ragged rows: expected {len(names)} columns (as in the header), got "
                         f"{len(cells[0])} on line {rows[0][0]}")
    return names, rows, cells


def _resolve_columns(target_columns, names: list[str] | None, n_columns: int, path: Path) -> list[int]:
    """Target column indices (0-based, non-negative) from ints and/or header names."""
    wanted = [target_columns] if isinstance(target_columns, (int, str, np.integer)) else list(target_columns)
    if not wanted:
        raise ValueError("target_columns: expected at least one column, got none")
    out = []
    for col in wanted:
        if isinstance(col, str):
            if names is None or col not in names:
                raise ValueError(
                    f"target_columns: expected a column index or a header name of {path}, got {col!r}; "
                    + ("the file has no header" if names is None else f"the names are {names}")
                )
            out.append(names.index(col))
        elif isinstance(col, (int, np.integer)) and not isinstance(col, bool) and -n_columns <= col < n_columns:
            out.append(int(col) % n_columns)
        else:
            raise ValueError(f"target_columns: expected indices in [-{n_columns}, {n_columns}) for {path}, got {col!r}")
    if len(set(out)) != len(out):
        raise ValueError(f"target_columns: expected distinct columns, got {wanted}")
    if len(out) == n_columns:
        raise ValueError(f"target_columns: expected to leave at least one input column of {n_columns}, got {wanted}")
    return out


def load_csv(
    path: str | os.PathLike,
    target_columns: int | str | Sequence[int | str] = -1,
    kind: str = "classification",
    header: bool | None = None,
    *,
    delimiter: str = ",",
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    standardize: bool = True,
    scaling: Mapping[str, Any] | None = None,
    n_classes: int | None = None,
    dtype=np.float64,
) -> Splits:
    """A numeric CSV file as train / validation / test sets.

    Parameters
    ----------
    path : str or path-like
        The file: one sample per row, numbers only (after an optional header).
    target_columns : int, str or sequence of them
        Target column(s), by 0-based index (negative counts from the end) or header
        name. Default: the last column.
    kind : {"classification", "regression"}
        Classification needs exactly one target column of integer labels 0, 1, ...;
        they become one-hot targets. Regression targets are used as they are.
    header : bool or None
        See :func:`read_csv`; ``None`` detects a header row.
    delimiter : str
    seed : int
        Seed of the split.
    val_fraction, test_fraction : float
        Fractions in [0, 1); sizes are ``ceil(rows · fraction)``. Classification splits
        are stratified by label, regression splits plain random.
    standardize : bool
        Standardize each input feature with the mean and standard deviation of the
        **training split only** (recorded in ``scaling``); False leaves inputs raw.
    scaling : mapping, optional
        Use this scaling record instead (e.g. the one stored with a trained model, at
        evaluation time); overrides ``standardize``.
    n_classes : int, optional
        Number of classes; default: the largest label + 1.
    dtype : float32 or float64

    Returns
    -------
    Splits

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Empty file, ragged rows, non-numeric or NaN cells (with line and column),
        unknown target columns, or non-integer / negative / too large class labels.
    """
    path = Path(path)
    check_choice("kind", kind, KINDS)
    names, rows, cells = read_table(path, delimiter, header)
    n_columns = len(cells[0])
    targets = _resolve_columns(target_columns, names, n_columns, path)
    features = [c for c in range(n_columns) if c not in targets]
    lines = [lineno for lineno, _ in rows]
    raw_X = np.ascontiguousarray(table_numbers(path, rows, cells, features).T)
    class_names = None
    if kind == "classification" and len(targets) == 1 and not all(_is_number(row[targets[0]]) for row in cells):
        texts = [row[targets[0]] for row in cells]
        class_names = sorted(set(texts))
        index = {name: k for k, name in enumerate(class_names)}
        data = np.empty((len(cells), n_columns))
        data[:, targets[0]] = [index[t] for t in texts]
    else:
        data = np.empty((len(cells), n_columns))
        data[:, targets] = table_numbers(path, rows, cells, targets)
    info: dict[str, Any] = {"seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction,
                            "path": str(path), "feature_columns": features, "target_columns": targets}
    if names is not None:
        info["feature_names"] = [names[c] for c in features]
        info["target_names"] = [names[c] for c in targets]
    if kind == "classification":
        if len(targets) != 1:
            raise ValueError(f"target_columns: expected one label column for classification, got {len(targets)}")
        column = data[:, targets[0]]
        distinct = np.unique(column)
        if distinct.size < 2:
            what = class_names[0] if class_names else f"{column[0]:g}"
            raise ValueError(
                f"{path}: column {targets[0] + 1} holds one class only ({what!r} on every row); classification "
                "needs at least two classes (for a numeric target use kind='regression')"
            )
        k = int(column.max()) + 1 if n_classes is None else check_positive_int("n_classes", n_classes)
        if n_classes is None and k > MAX_INFERRED_CLASSES:
            raise ValueError(
                f"{path}: column {targets[0] + 1} has labels up to {k - 1}: expected at most "
                f"{MAX_INFERRED_CLASSES} classes; pass kind='regression' for a numeric target, "
                "or n_classes= if the classes are real"
            )
        bad = np.flatnonzero((column != np.round(column)) | (column < 0) | (column >= k))
        if bad.size:
            r = int(bad[0])
            raise ValueError(
                f"{path}: line {lines[r]}, column {targets[0] + 1}: expected an integer class label "
                f"in [0, {k}), got {column[r]}"
            )
        labels = column.astype(np.int64)
        parts = split_indices(labels.shape[0], val_fraction, test_fraction, seed, labels=labels)
        info["method"] = "stratified"
        if class_names is not None:
            info["class_names"] = class_names
        target_options: dict[str, Any] = {"labels": labels, "n_classes": k}
    else:
        if n_classes is not None:
            raise ValueError(f"n_classes: expected None for kind='regression', got {n_classes!r}")
        parts = split_indices(data.shape[0], val_fraction, test_fraction, seed)
        info["method"] = "random"
        target_options = {"T": np.ascontiguousarray(data[:, targets].T)}
    if scaling is None:
        scaling = standardize_scaling(raw_X[:, parts[0]]) if standardize else {"method": "none"}
    return make_splits(raw_X, parts, info, name=f"csv:{path.name}", scaling=scaling, dtype=dtype, **target_options)
