"""The foreign-project examples (also the README's "Use indexnet as an oracle" examples) run green, each
in a pytest process of its own: an in-process run forgets the modules it imported first,
and a second import of one of Numba's typing modules fails (test_explain before this file
showed it)."""
from pathlib import Path

pytest_plugins = ["pytester"]

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXAMPLE = EXAMPLES / "foreign_project" / "test_my_layer.py"
PYTORCH_STYLE = EXAMPLES / "pytorch_style_project" / "test_my_convnet.py"


def test_foreign_project_example_passes(pytester):
    """examples/foreign_project/test_my_layer.py, run as its own pytest session with only the
    installed plugin (no conftest of ours), passes all of its tests: the fixture is found
    through the entry point, the hand-written gradients match the oracle, a planted bug is
    caught and named, and the finite-difference check passes."""
    pytester.makepyfile(test_my_layer=EXAMPLE.read_text(encoding="utf-8"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_pytorch_style_example_passes(pytester):
    """examples/pytorch_style_project/test_my_convnet.py — a NumPy NCHW conv net with a Linear
    logits head and mean CrossEntropyLoss, written the PyTorch way — run as its own pytest
    session: its gradients, ∂J/∂X and intermediates match the oracle called with PyTorch's
    names and no rescaling, a forgotten ReLU' is caught and named, finite differences pass."""
    pytester.makepyfile(test_my_convnet=PYTORCH_STYLE.read_text(encoding="utf-8"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
