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
