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
