"""The foreign-project example (also the README's "Use indexnet as an oracle" example) runs green."""
from pathlib import Path

pytest_plugins = ["pytester"]

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "foreign_project" / "test_my_layer.py"


def test_foreign_project_example_passes(pytester):
    """examples/foreign_project/test_my_layer.py, run as its own pytest session with only the
    installed plugin (no conftest of ours), passes all of its tests: the fixture is found
    through the entry point, the hand-written gradients match the oracle, a planted bug is
    caught and named, and the finite-difference check passes."""
    pytester.makepyfile(test_my_layer=EXAMPLE.read_text(encoding="utf-8"))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
