"""The --layers grammar: parsing, printing back, automatic flatten, clear errors."""
import pytest

from indexnet.nn.layers import Dense
from indexnet.nn.spec import SpecError, build_layers, format_layers, parse_layers


def test_dense_spec_parses_to_layers():
    """`800:relu,10:softmax` is seed 001's two dense layers."""
    assert parse_layers("800:relu, 10:softmax") == [Dense(800, "relu"), Dense(10, "softmax")]


@pytest.mark.parametrize("spec", [
    "800:relu,10:softmax",
    "conv8@3x3:relu,maxpool2,flatten,10:softmax",
    "conv16@3x5/s2/p1:tanh,avgpool2/s1,flatten,4:identity",
])
def test_format_is_the_inverse_of_parse(spec):
    """format_layers(parse_layers(s)) == s for specs written in canonical form."""
    assert format_layers(parse_layers(spec)) == spec


def test_conv_tokens_and_flatten_insertion():
    """Conv/pool tokens carry kernel, stride and padding; a flatten goes between image and dense layers."""
    layers, input_shape = build_layers("conv8@3x3/p1:relu,maxpool2,conv16@3/s1/p1:relu,avgpool2,10:softmax",
                                       64, (1, 8, 8), 10)
    assert input_shape == (1, 8, 8)
    assert [l.kind for l in layers] == ["conv2d", "maxpool2d", "conv2d", "avgpool2d", "flatten", "dense"]
    assert layers[0].kernel_size == (3, 3) and layers[0].pad == 1 and layers[0].stride == 1
    assert layers[1].size == 2 and layers[1].stride == 2
    dense_only, shape = build_layers("800:relu,10:softmax", 64, (1, 8, 8), 10)
    assert shape == (64,) and len(dense_only) == 2


@pytest.mark.parametrize("spec,pattern", [
    ("", "expected at least one layer"),
    ("800", r"token '800' does not parse: expected UNITS:ACT"),
    ("800:relu,,10:softmax", "token 2 of .* is empty"),
    ("800:rleu,10:softmax", r"expected an activation in identity, .*got 'rleu'"),
    ("0:relu,10:softmax", "expected at least 1 unit, got 0"),
    ("conv8@3x3:softmax,10:softmax", "expected an activation in identity"),
    ("conv8@3x3/p1/p2:relu,10:softmax", "option /p2 given twice"),
    ("conv0@3x3:relu,10:softmax", "expected a filters >= 1, got 0"),
    ("maxpool0,10:softmax", "expected window and stride >= 1"),
    ("pool2,10:softmax", "token 'pool2' does not parse"),
])
def test_bad_tokens_are_named(spec, pattern):
    """Every malformed spec fails with SpecError naming --layers and the offending token."""
    with pytest.raises(SpecError, match=pattern):
        build_layers(spec, 64, (1, 8, 8), 10)


def test_specs_that_do_not_fit_the_data():
    """Image layers on flat data, wrong output size and windows too large are refused with the shapes."""
    with pytest.raises(SpecError, match="starts with an image layer .* no image shape"):
        build_layers("conv4@3x3:relu,10:softmax", 5, None, 10)
    with pytest.raises(SpecError, match=r"expected the last layer to give 3 output\(s\).*got shape \(10,\)"):
        build_layers("800:relu,10:softmax", 64, None, 3)
    with pytest.raises(SpecError, match=r"got shape \(4, 8, 8\)"):
        build_layers("conv4@3x3/p1:relu", 64, (1, 8, 8), 10)
    with pytest.raises(SpecError, match="maxpool9 does not fit its input shape"):
        build_layers("maxpool9,10:softmax", 64, (1, 8, 8), 10)
    with pytest.raises(SpecError, match="needs a .C, H, W. image input"):
        build_layers("10:relu,maxpool2,10:softmax", 64, (1, 8, 8), 10)
