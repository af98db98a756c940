"""The train / eval / demo / check commands, end to end on small runs."""
import json
import re

import pytest

from indexnet.cli import main


def test_train_on_digits_writes_every_output_and_eval_reproduces_the_test_accuracy(tmp_path, capsys):
    """`indexnet train --epochs 1 --quiet` on the embedded digits writes the model, checkpoint, history
    (CSV and JSON), metrics and PNGs; `indexnet eval` on the saved model reports the same test accuracy."""
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--quiet", "--engine", "numpy", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "total parameters: 60010" in text and "dense 800 relu" in text
    for name in ("model.npz", "best.npz", "checkpoint.npz", "history.csv", "history.json", "metrics.json",
                 "curves.png", "confusion.png"):
        assert (out / name).is_file(), name
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    header = (out / "history.csv").read_text().splitlines()[0].split(",")
    assert {"epoch", "train_loss", "val_loss", "train_acc", "val_acc", "lr", "seconds"} <= set(header)
    acc = json.loads((out / "metrics.json").read_text())["test"]["accuracy"]
    assert f"test accuracy: {100 * acc:.2f}%" in text

    assert main(["eval", str(out / "model.npz"), "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert f"test accuracy: {100 * acc:.2f}%" in text
    assert (tmp_path / "eval-digits-test-confusion.png").is_file()


def test_train_resume_continues_the_stored_run(tmp_path, capsys):
    """--resume CHECKPOINT picks up after the stored epoch, with the stored settings."""
    out = tmp_path / "run"
    args = ["train", "--quiet", "--engine", "numpy", "--layers", "32:relu,10:softmax", "--out", str(out)]
    assert main(args + ["--epochs", "1"]) == 0
    capsys.readouterr()
    assert main(["train", "--quiet", "--resume", str(out / "checkpoint.npz"), "--epochs", "2"]) == 0
    history = json.loads((out / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2]
    assert main(["train", "--resume", str(out / "checkpoint.npz"), "--lr", "1"]) == 2
    assert "--resume: the run continues with its stored configuration; drop --lr" in capsys.readouterr().err
    assert main(args + ["--epochs", "1"]) == 2
    assert "already holds a run" in capsys.readouterr().err


@pytest.mark.parametrize("argv,pattern", [
    (["--layers", "800:relu,10"], r"--layers: token '10' does not parse"),
    (["--layers", "conv4@3x3:relu,3:softmax"], r"expected the last layer to give 10 output"),
    (["--data", "mnist"], r"--data-dir: expected the folder"),
    (["--data", "mnist", "--data-dir", "/nonexistent"], r"(?i)no such|missing|not found|does not exist"),
])
def test_train_errors_exit_2_with_a_message_naming_the_option(argv, pattern, capsys, tmp_path):
    """Bad options stop before training with exit code 2 and a message naming the option."""
    assert main(["train", "--quiet", "--out", str(tmp_path / "x")] + argv) == 2
    assert re.search(pattern, capsys.readouterr().err)


def test_csv_labels_outside_the_class_range_are_rejected(tmp_path, capsys):
    """A CSV whose label column holds a negative class fails with the line and column of the bad label."""
    rows = ["a,b,label"] + [f"{i},{i % 3},{i % 2}" for i in range(20)] + ["1,2,-1"]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    assert main(["train", "--quiet", "--data", "csv", "--csv", str(tmp_path / "d.csv"), "--out",
                 str(tmp_path / "o")]) == 2
    assert re.search(r"line 22, column 3: expected an integer class label", capsys.readouterr().err)


def test_demo_square_writes_the_fitted_function_figure(tmp_path, capsys):
    """`indexnet demo square` trains seed 000's net on x² (a quick run here) and writes fit.png."""
    out = tmp_path / "sq"
    assert main(["demo", "square", "--epochs", "30", "--engine", "numpy", "--quiet", "--out", str(out)]) == 0
    assert (out / "fit.png").read_bytes()[:4] == b"\x89PNG"
    assert "figure:" in capsys.readouterr().out


def test_check_prints_a_passing_table(capsys):
    """`indexnet check --engines numpy` gradient-checks every loss (and a conv net) and passes."""
    assert main(["check", "--engines", "numpy"]) == 0
    text = capsys.readouterr().out
    assert "cross_entropy" in text and "FAIL" not in text and re.search(r"\d+ passed, 0 failed", text)


def test_a_diverging_run_exits_3_with_the_epoch_and_step(tmp_path, capsys):
    """`indexnet train` with an absurd learning rate stops with exit code 3 and a message naming where."""
    out = tmp_path / "d"
    code = main(["train", "--preset", "seed000", "--lr", "1e30", "--epochs", "3", "--engine", "numpy", "--quiet",
                 "--out", str(out)])
    assert code == 3
    assert re.search(r"training diverged: .* at epoch \d+, step 1 of 1", capsys.readouterr().err)


def test_eval_refuses_data_of_another_shape(tmp_path, capsys):
    """Evaluating a digits model on x² data fails with the expected and actual feature counts."""
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--quiet", "--engine", "numpy", "--layers", "8:relu,10:softmax",
                 "--no-plots", "--out", str(out)]) == 0
    assert main(["eval", str(out / "model.npz"), "--data", "square"]) == 2
    assert "expected 64 input features and 10 outputs" in capsys.readouterr().err


def test_show_config_prints_each_value_with_its_source(capsys):
    """--show-config prints the resolved settings with their sources and exits without training."""
    assert main(["train", "--show-config", "--layers", "100:relu,10:softmax", "--lr", "0.01"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"--lr\s+0\.01\s+command line", text)
    assert re.search(r"--optimizer\s+adam\s+data set's preset digits", text)
    assert re.search(r"--batch-size\s+200\s+data set's preset digits", text)
    assert re.search(r"--seed\s+0\s+built-in default", text)


def test_help_shows_each_presets_true_default(capsys):
    """--help gives the default of every preset where it differs (the digits preset trains at lr 0.002 with
    batch 200, not the built-in 0.05 and 32), and no Sphinx markup."""
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "0.002 with digits (the default)" in text and "200 with digits (the default)" in text
    assert ":mod:" not in text and "``" not in text


@pytest.mark.parametrize("make,pattern", [
    (lambda p: p.write_text("x"), r"--out: expected a folder .* existing file"),
    (lambda p: p.parent.write_text("x"), r"--out: .* lies below .*f, which is a file"),
])
def test_a_bad_out_folder_is_refused_before_training(tmp_path, capsys, make, pattern):
    """--out naming a file, or a path below a file, fails at once with exit 2 (it used to fail after epoch 1)."""
    out = tmp_path / "o" if "below" not in pattern else tmp_path / "f" / "run"
    make(out)
    assert main(["train", "--quiet", "--epochs", "1", "--engine", "numpy", "--out", str(out)]) == 2
    assert re.search(pattern, capsys.readouterr().err)
    assert main(["train", "--show-config", "--out", str(out)]) == 0


def test_an_out_folder_that_cannot_be_written_is_refused_before_training(tmp_path, capsys, monkeypatch):
    """--out in a folder the user may not write to fails at once with exit 2, naming the folder and the
    reason, and leaves nothing behind. (The tests run as root, whom permissions do not stop, so the refusal
    of the operating system is simulated where check_out probes the folder.)"""
    import tempfile

    import indexnet.nn.spec  # noqa: F401 - imported before the patch: Numba's cache probes folders with tempfile
    import indexnet.train.trainer  # noqa: F401

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    out = tmp_path / "locked" / "run"
    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    assert main(["train", "--quiet", "--epochs", "1", "--engine", "numpy", "--out", str(out)]) == 2
    assert re.search(r"--out: cannot write to .*locked/run \(Permission denied\)", capsys.readouterr().err)
    assert not (tmp_path / "locked").exists()


def test_output_names_the_fast_engine_says_it_compiles_and_labels_the_metrics(tmp_path, capsys):
    """A run shows the compile notice with its time, the engine `fast`, labelled metrics, every epoch of a
    5-epoch digits run, and an s/epoch figure over this process's epochs; resuming the finished run says so."""
    out = tmp_path / "run"
    assert main(["train", "--epochs", "5", "--layers", "8:relu,10:softmax", "--no-plots", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"compiling the kernels .* ready in \d+\.\d s", text)
    assert "engine fast" in text and "train loss (running mean)" in text and "train acc (end of epoch)" in text
    assert len(re.findall(r"^epoch [1-5]/5", text, re.M)) == 5
    assert "mean over the 5 epochs of this run" in text
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "has finished all 5 epochs, so nothing is trained" in text and "compiling" not in text
    assert main(["train", "--resume", str(out / "checkpoint.npz"), "--epochs", "7", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "extending the run to 7 epochs" in text and "mean over the 2 epochs of this run" in text


def test_ctrl_c_exits_130_with_the_resume_command(tmp_path):
    """SIGINT during training (a real process, numpy engine): exit 130, the resume command on stderr, and a
    loadable checkpoint of the last completed epoch."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from indexnet.train.checkpoint import load_checkpoint

    out = tmp_path / "run"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "indexnet", "train", "--engine", "numpy", "--epochs", "100000",
                             "--layers", "8:relu,10:softmax", "--log-every", "1", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 60
    for line in proc.stdout:
        if re.match(r"epoch\s+2/", line) or time.time() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"Continue with: indexnet train --resume {out / 'checkpoint.npz'}" in err
    assert "Traceback" not in err
    assert load_checkpoint(out / "checkpoint.npz").epoch >= 2


def write(path, data: bytes | str):
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def csv_rows(n=30, label=lambda i: i % 2):
    return "".join(f"{i % 5},{(i * 7) % 3},{label(i)}\n" for i in range(n))


@pytest.mark.parametrize("make,pattern", [
    (lambda d: d, r"--csv: .* is a folder; expected a file"),
    (lambda d: d / "missing.csv", r"--csv: .*missing.csv does not exist"),
    (lambda d: write(d / "x.csv", b"a,b\xff,c\n" + csv_rows().encode()), r"x.csv: line 1, byte 4: not UTF-8 text"),
    (lambda d: write(d / "x.csv", b"\xef\xbb\xbfa,b,c\n" + csv_rows().encode()), r"byte-order mark"),
    (lambda d: write(d / "x.csv", csv_rows().replace(",", ";")), r"separates its cells with ';'"),
    (lambda d: write(d / "x.csv", '"1",2,0\n' + csv_rows()), r'line 1, column 1: quoted value "1"'),
    (lambda d: write(d / "x.csv", csv_rows(label=lambda i: "cat")), r"holds one class only \('cat' on every row\)"),
    (lambda d: write(d / "x.csv", csv_rows(label=lambda i: 1)), r"holds one class only"),
    (lambda d: write(d / "x.csv", "a,b,c\n" + csv_rows()), None),
])
def test_bad_csv_files_are_clear_errors_naming_file_line_and_option(tmp_path, capsys, make, pattern):
    """A folder or a missing file names --csv; bytes that are not UTF-8 name the file, line and byte; a BOM,
    semicolons and quoted numbers are refused saying so; a file with one class is refused. Exit 2, before
    any training, and no output folder left behind."""
    path = make(tmp_path)
    if pattern is None:  # the control: the same rows with a plain header train
        assert main(["train", "--quiet", "--data", "csv", "--csv", str(path), "--epochs", "1", "--engine", "numpy",
                     "--no-plots", "--out", str(tmp_path / "o")]) == 0
        return
    assert main(["train", "--quiet", "--data", "csv", "--csv", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert re.search(pattern, err), err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_text_class_labels_become_named_classes_shown_by_eval(tmp_path, capsys):
    """A CSV whose label column holds words trains a classifier over the sorted distinct words; the names are
    stored in the model, and eval prints them with per-class counts."""
    import numpy as np
    from indexnet.io import load_model

    names = ["cat", "dog", "eel"]
    path = write(tmp_path / "pets.csv", "x,y,pet\n" + "".join(
        f"{i % 3 + 0.1 * (i % 7)},{(i * 5) % 3},{names[i % 3]}\n" for i in range(60)))
    out = tmp_path / "run"
    assert main(["train", "--quiet", "--data", "csv", "--csv", str(path), "--target", "pet", "--epochs", "3",
                 "--engine", "numpy", "--no-plots", "--out", str(out)]) == 0
    _, meta = load_model(out / "model.npz")
    assert meta["data"]["class_names"] == names and meta["data"]["n_classes"] == 3
    capsys.readouterr()
    assert main(["eval", str(out), "--no-plots"]) == 0
    text = capsys.readouterr().out
    assert all(name in text for name in names)


@pytest.mark.parametrize("argv,pattern", [
    (["--test-fraction", "0"], r"--data digits: the test split is empty \(0 examples\); check --test-fraction"),
    (["--val-fraction", "0.5", "--test-fraction", "0.5"], r"--val-fraction \+ --test-fraction: expected to leave"),
    (["--layers", "100000000:relu,10:softmax"], r"--layers 100000000:relu,10:softmax: training this network needs "
                                                r"about [\d.]+ GiB .* GiB available"),
    (["--val-size", "10"], r"--val-size: applies to --data mnist or fashion"),
])
def test_split_and_size_errors_come_before_any_work_and_name_the_option(tmp_path, capsys, argv, pattern):
    """An empty test split, fractions leaving no training data, a network too large for the memory (estimated
    from the shapes, nothing allocated) and --val-size on digits: exit 2 naming the CLI option."""
    assert main(["train", "--quiet", "--out", str(tmp_path / "o")] + argv) == 2
    err = capsys.readouterr().err
    assert re.search(pattern, err), err
    assert "val_fraction" not in err and "test_fraction" not in err


def small_idx_dir(path, n_train=60, n_test=0 or 20):
    import numpy as np
    from indexnet.data import write_idx

    path.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    write_idx(path / "train-images-idx3-ubyte", rng.integers(0, 256, (n_train, 4, 4), dtype=np.uint8))
    write_idx(path / "train-labels-idx1-ubyte", (np.arange(n_train) % 10).astype(np.uint8))
    write_idx(path / "t10k-images-idx3-ubyte", rng.integers(0, 256, (n_test, 4, 4), dtype=np.uint8))
    write_idx(path / "t10k-labels-idx1-ubyte", (np.arange(n_test) % 10).astype(np.uint8))
    return path


def test_a_small_mnist_format_set_trains_with_a_validation_share(tmp_path, capsys):
    """An MNIST-format set of 60 training images trains (the validation set was fixed at 5000 images, more
    than the file holds): 10 % by default, --val-size N or --val-fraction F otherwise."""
    d = small_idx_dir(tmp_path / "m")
    base = ["train", "--quiet", "--data", "mnist", "--data-dir", str(d), "--layers", "8:relu,10:softmax",
            "--epochs", "1", "--engine", "numpy", "--no-plots"]
    assert main(base + ["--out", str(tmp_path / "a")]) == 0
    assert "train/val/test 54/6/20" in capsys.readouterr().out
    assert main(base + ["--val-size", "12", "--out", str(tmp_path / "b")]) == 0
    assert "train/val/test 48/12/20" in capsys.readouterr().out
    assert main(base + ["--val-size", "60", "--out", str(tmp_path / "c")]) == 2
    assert "--val-size: expected fewer than the 60 training images" in capsys.readouterr().err


@pytest.mark.parametrize("damage,pattern", [
    ("empty-test", r"t10k-images-idx3-ubyte: expected at least one test image, got an empty file"),
    ("folder", r"--data-dir: .*t10k-labels-idx1-ubyte is a folder; expected a file"),
    ("loop", r"--data-dir: .*t10k-labels-idx1-ubyte is a loop of symbolic links"),
])
def test_idx_folders_loops_and_empty_test_files_are_named(tmp_path, capsys, damage, pattern):
    """A folder or a symlink loop where an IDX file should be is called that (it was "missing X; it holds
    [X.gz]"), and an empty test file stops the run before training."""
    d = small_idx_dir(tmp_path / "m", n_test=0 if damage == "empty-test" else 20)
    if damage != "empty-test":
        (d / "t10k-labels-idx1-ubyte").unlink()
        if damage == "folder":
            (d / "t10k-labels-idx1-ubyte").mkdir()
        else:
            (d / "t10k-labels-idx1-ubyte").symlink_to(d / "loop")
            (d / "loop").symlink_to(d / "t10k-labels-idx1-ubyte")
    assert main(["train", "--quiet", "--data", "mnist", "--data-dir", str(d), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert re.search(pattern, err), err


def test_python_api_fit_load_model_predict(tmp_path):
    """indexnet.fit trains as `indexnet train` does and returns a Model; indexnet.load_model reads the run
    folder back; model.predict on the raw test pixels (0..16, one image per row) reproduces the stored
    test accuracy, and predict_proba rows are distributions whose argmax is predict."""
    import numpy as np

    import indexnet
    from indexnet.data import load_digits

    model = indexnet.fit(layers="16:relu,10:softmax", epochs=3, engine="numpy", out=tmp_path / "run")
    assert len(model.history) == 3 and 0 < model.test_metrics["accuracy"] <= 1
    loaded = indexnet.load_model(tmp_path / "run")
    test = load_digits().test
    raw = np.rint(test.X.T * 16)  # the file's pixel values, one image per row
    labels = loaded.predict(raw, engine="numpy")
    assert np.mean(labels == test.labels) == pytest.approx(model.test_metrics["accuracy"])
    P = loaded.predict_proba(raw.reshape(-1, 8, 8), engine="numpy")
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    assert np.array_equal(P.argmax(axis=1), labels) and loaded.class_names == [str(k) for k in range(10)]
    with pytest.raises(ValueError, match=r"X: expected raw inputs with 64 values per sample"):
        loaded.predict(np.zeros((3, 5)))


def test_predict_writes_classes_names_and_probabilities_for_csv_npy_and_idx(tmp_path, capsys):
    """`indexnet predict RUN INPUT` reads a CSV (with or without the target column), a .npy or an IDX file
    of raw inputs and writes one CSV row per sample: class, its name, the probabilities."""
    import numpy as np
    from indexnet.data import write_idx

    names = ["cat", "dog"]
    rows = [(i % 4, (i * 3) % 5, names[int(i % 4 >= 2)]) for i in range(40)]
    path = write(tmp_path / "pets.csv", "a,b,pet\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows))
    run = tmp_path / "run"
    assert main(["train", "--quiet", "--data", "csv", "--csv", str(path), "--target", "pet", "--epochs", "2",
                 "--engine", "numpy", "--no-plots", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["predict", str(run), str(path), "--engine", "numpy"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "row,class,name,p_cat,p_dog" and len(lines) == 41
    first = lines[1].split(",")
    assert first[2] == names[int(first[1])] and abs(float(first[3]) + float(first[4]) - 1) < 1e-5
    np.save(tmp_path / "x.npy", np.array([[a, b] for a, b, _ in rows], dtype=np.float64))
    assert main(["predict", str(run / "model.npz"), str(tmp_path / "x.npy"), "--out", str(tmp_path / "p.csv"),
                 "--engine", "numpy"]) == 0
    assert (tmp_path / "p.csv").read_text().splitlines() == lines
    write_idx(tmp_path / "x.idx", np.array([[a, b] for a, b, _ in rows], dtype=np.uint8))
    capsys.readouterr()
    assert main(["predict", str(run), str(tmp_path / "x.idx"), "--engine", "numpy"]) == 0
    assert capsys.readouterr().out.splitlines() == lines
    assert main(["predict", str(run), str(tmp_path)]) == 2
    assert "INPUT: " in capsys.readouterr().err


def test_ctrl_c_while_loading_exits_130_without_a_traceback(monkeypatch, capsys, tmp_path):
    """Ctrl-C outside the training loop (here while the data loads) ends with exit 130 and one line, no
    KeyboardInterrupt traceback."""
    import indexnet.train.trainer as T

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(T, "load_splits", interrupted)
    assert main(["train", "--quiet", "--out", str(tmp_path / "o")]) == 130
    assert "indexnet train: interrupted" in capsys.readouterr().err


def test_waiting_threads_sleep_on_a_busy_machine_only(monkeypatch):
    """At a load average of at least the number of cores, spinning OpenMP workers starve the working ones
    (a digits run took 88 s instead of 14 s at load 9.6 on 2 cores), and so they do when one other process
    is running (epochs ten times slower in 4 of 10 runs): the train and demo commands then set
    OMP_WAIT_POLICY=passive and say so; a machine with nothing else running, or a policy the user chose,
    is left alone."""
    import os

    from indexnet.cli import train as T

    cores = os.cpu_count() or 1
    monkeypatch.setattr(os, "getloadavg", lambda: (cores + 0.5, 0.0, 0.0))
    monkeypatch.setattr(T, "others_running", lambda: 0)
    env = {}
    note = T.passive_workers_when_busy(env)
    assert env == {"OMP_WAIT_POLICY": "passive"} and f"load average {cores + 0.5:.1f} on {cores} cores" in note
    chosen = {"OMP_WAIT_POLICY": "active"}
    assert T.passive_workers_when_busy(chosen) is None and chosen == {"OMP_WAIT_POLICY": "active"}
    monkeypatch.setattr(os, "getloadavg", lambda: (cores - 0.5, 0.0, 0.0))
    idle = {}
    assert T.passive_workers_when_busy(idle) is None and idle == {}
    monkeypatch.setattr(T, "others_running", lambda: 1)
    shared = {}
    assert "1 other running process on" in T.passive_workers_when_busy(shared)
    assert shared == {"OMP_WAIT_POLICY": "passive"}


def test_the_running_processes_are_read_from_proc_loadavg(monkeypatch, tmp_path):
    """others_running: the smallest of its samples of /proc/loadavg's running count, minus this process."""
    import builtins

    from indexnet.cli import train as T

    samples = iter(["2.00 1.50 1.00 4/300 123\n", "2.00 1.50 1.00 2/300 123\n", "2.00 1.50 1.00 3/300 123\n"])
    real_open = builtins.open

    def fake_open(path, *args, **kwargs):
        if path == "/proc/loadavg":
            target = tmp_path / "loadavg"
            target.write_text(next(samples))
            return real_open(target, *args, **kwargs)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    assert T.others_running() == 1  # min(4, 2, 3) running, one of them this process
