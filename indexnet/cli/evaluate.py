"""``indexnet eval MODEL``: reload a saved model and report its loss and accuracy.

MODEL is a model file (model.npz, best.npz, checkpoint.npz) or a run folder (its
model.npz). The data set, its split and its input scaling come from the model file;
--data (and --data-dir, --csv, ...) evaluate on another set of the same shape, with the
model's stored scaling. For classifiers the per-class counts are printed (with the class
names of a CSV file's text labels) and a confusion-matrix PNG is written.
"""
from __future__ import annotations

from indexnet.cli import plain_text

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from indexnet.cli.train import add_common_options, set_threads

DATA_OPTIONS = ("data", "data_dir", "csv", "target", "task", "split_seed")


def add_parser(sub, name: str, help_text: str):
    p = sub.add_parser(name, help=help_text, description=plain_text(__doc__.split("\n\n")[1]))
    p.add_argument("model", help="a run folder, or a model.npz (or best.npz / checkpoint.npz) written by indexnet train")
    add_common_options(p, DATA_OPTIONS + ("engine", "eval_batch_size"))
    p.add_argument("--split", default="test", choices=("test", "validation", "train"),
                   help="which split to evaluate (default test)")
    p.add_argument("--out", default=None, help="folder for the confusion-matrix PNG (default: the model's folder)")
    p.add_argument("--no-plots", action="store_true", help="do not write the confusion-matrix PNG")
    p.add_argument("--threads", type=int, default=None, help="threads for Numba and BLAS (default: all cores)")
    return p


def load_eval_data(net, meta: dict, overrides: dict):
    """The splits to evaluate ``net`` on, scaled with the model's stored scaling.

    Raises
    ------
    ValueError
        A model file without data information, a data set whose scaling differs from
        the stored one, or whose shape or classes do not fit the network.
    """
    from indexnet.train.trainer import TrainConfig, load_splits

    if "data" not in meta or "config" not in meta:
        raise ValueError("model: the file has no data record (written by indexnet train?); cannot evaluate it")
    stored = meta["data"]
    config = replace(TrainConfig.from_dict(meta["config"]), dtype=str(net.dtype),
                     **{k: v for k, v in overrides.items() if v is not None})
    splits = load_splits(config, scaling=stored["scaling"])
    ds = splits.train
    if ds.n_features != int(np.prod(net.input_shape)) or ds.n_outputs != net.output_shape[0]:
        raise ValueError(
            f"--data: expected {int(np.prod(net.input_shape))} input features and {net.output_shape[0]} outputs "
            f"(the model's), got {ds.n_features} and {ds.n_outputs} from {ds.name}"
        )
    if ds.scaling != stored["scaling"]:
        raise ValueError(f"--data: {ds.name} is scaled {ds.scaling}, but the model was trained on inputs "
                         f"scaled {stored['scaling']}")
    return splits


def class_table(m: dict, ds, names) -> str:
    """Per true class: its name, count and accuracy."""
    import numpy as np

    names = names or [str(k) for k in range(ds.n_classes)]
    width = max(len(n) for n in names)
    lines = [f"{'class':<{width}}  examples  correct"]
    for k, name in enumerate(names):
        mask = ds.labels[: m["n"]] == k
        right = int(np.sum(m["predictions"][mask] == k))
        lines.append(f"{name:<{width}}  {int(mask.sum()):>8}  {right:>7}")
    return "\n".join(lines)


def run(args) -> int:
    from indexnet.io import load_model
    from indexnet.model import model_file
    from indexnet.train.metrics import confusion_matrix, evaluate, format_metrics
    from indexnet.train.plots import plot_confusion
    from indexnet.train.trainer import ENGINE_MAP

    try:
        set_threads(args.threads)
        args.model = str(model_file(args.model))
        net, meta = load_model(args.model)
        overrides = {k: getattr(args, k) for k in DATA_OPTIONS}
        splits = load_eval_data(net, meta, overrides)
        engine = args.engine or meta.get("config", {}).get("engine", "fast")
        engine = "fast" if engine not in ENGINE_MAP else engine
        batch = args.eval_batch_size or 1000
        ds = getattr(splits, args.split)
        m = evaluate(net, ds, ENGINE_MAP[engine], batch)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"indexnet eval: error: {exc}", file=sys.stderr)
        return 2
    print(f"model: {args.model} ({meta.get('layers_spec', '')}, {net.n_params} parameters, {net.dtype})")
    print(f"data: {ds.name} {args.split} split, {ds.n_samples} examples, input scaling {ds.scaling['method']}")
    print(format_metrics(args.split, m))
    if "accuracy" in m:
        names = meta["data"].get("class_names")
        print(f"{args.split} accuracy: {100 * m['accuracy']:.2f}%  (error {100 * (1 - m['accuracy']):.2f}%)")
        print(class_table(m, ds, names))
        if not args.no_plots:
            out = Path(args.out) if args.out else Path(args.model).parent
            path = plot_confusion(confusion_matrix(m["predictions"], ds.labels[: m["n"]], ds.n_classes),
                                  out / f"eval-{ds.name.replace(':', '-')}-{args.split}-confusion.png",
                                  title=f"{ds.name} {args.split}: accuracy {100 * m['accuracy']:.2f}%",
                                  class_names=names)
            print(f"wrote: {path}")
    return 0
