"""A forward that fails on the input size ends with what to do in words the CLI user and the
Python user both read: a gray input for an RGB model is told the size its first conv takes
(torch's words alone left it to work out; and 'check input_size' named a Python argument to
a user of --input)."""

import pytest
from torch import nn

from cnnlab.cli import main
from cnnlab.design.summary import summary
from cnnlab.errors import CnnlabError


def rgb_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)
    )


def test_a_gray_input_for_an_rgb_model_is_told_the_size_that_fits():
    with pytest.raises(CnnlabError) as caught:
        summary(rgb_net(), (1, 8, 8))
    said = str(caught.value)
    assert said.startswith("layer 0 (Conv2d) on a 1×1×8×8 input")
    assert said.endswith("; the first layer takes 3 channels, the input has 1: try 3×8×8")
    assert summary(rgb_net(), (3, 8, 8)).rows[0].output_shape == (8, 6, 6)  # the size told


def test_a_later_layer_failing_is_told_to_check_the_size_not_the_channels():
    """Past the first layer the channels are the model's own: no channel advice."""
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    with pytest.raises(CnnlabError) as caught:
        summary(net, (3, 10, 10))
    said = str(caught.value)
    assert said.endswith("; check the input size (C, H, W) 3×10×10") and "channels" not in said


def test_the_cli_says_it_in_one_line(tmp_path, capsys):
    (tmp_path / "m.py").write_text(
        "from torch import nn\n\n\ndef make():\n    return nn.Sequential(nn.Conv2d(3, 8, 3))\n"
    )
    assert main(["summary", "--model", f"{tmp_path / 'm.py'}:make", "--input", "1,8,8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "try 3×8×8" in err and "input_size" not in err, err
