"""A model whose backward fails because its forward changes in place a tensor autograd kept
(Xception as ported from Keras: a block starts with nn.ReLU(inplace=True) on its input, the
output of a ReLU before it, whose backward needs that output unchanged). Saliency,
SmoothGrad, Grad-CAM at an early layer, gradient flow and activation maximisation ended in
torch's RuntimeError, and the commands in a traceback. Truth: torch's own backward on the
model fails alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab import diagnose, explain

pytestmark = pytest.mark.usefixtures("one_thread")

NET = """
    from torch import nn

    class Block(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.body = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, padding=1))
            self.skip = nn.Conv2d(c, c, 1)

        def forward(self, x):  # x is the ReLU's output before it, which its backward needs
            return self.body(x) + self.skip(x)

    def make_net():
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), Block(4),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
"""
FIX = "hasattr(m, 'inplace'): m.inplace = False"


def model(tmp_path):
    import textwrap

    from cnnlab.train.source import parse_model_ref

    (tmp_path / "net.py").write_text(textwrap.dedent(NET))
    torch.manual_seed(0)
    return parse_model_ref(f"{tmp_path / 'net.py'}:make_net", []).build().eval()


def test_torch_itself_cannot_backpropagate_through_it(tmp_path):
    x = torch.randn(2, 1, 12, 12, requires_grad=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        model(tmp_path)(x)[:, 0].sum().backward()


@pytest.mark.parametrize(
    "method",
    [
        lambda m, x: explain.saliency(m, x),
        lambda m, x: explain.smoothgrad(m, x, n=2),
        lambda m, x: explain.gradcam(m, x, layer="0"),
        lambda m, x: diagnose.gradient_flow(m, (x, torch.tensor([0, 1]))),
        lambda m, x: explain.activation_maximization(
            m, "2", channels=[0], steps=2, input_size=(1, 12, 12)
        ),
    ],
    ids=["saliency", "smoothgrad", "gradcam", "gradient_flow", "actmax"],
)
def test_each_method_says_what_breaks_the_backward_and_the_fix(tmp_path, method):
    x = torch.randn(2, 1, 12, 12)
    with pytest.raises(explain.ExplainError, match="output of Relu in place") as e:
        method(model(tmp_path), x)
    assert "backward pass fails" in str(e.value) and FIX in str(e.value), e.value


def test_the_command_says_it_in_one_line(tmp_path, capsys):
    from cnnlab.cli import main
    from test_serve_page import imported_run

    run = imported_run(tmp_path, NET, [1, 12, 12])
    Image.fromarray(np.full((12, 12), 128, np.uint8)).save(tmp_path / "x.png")
    code = main(["explain", str(run), str(tmp_path / "x.png"), "--method", "saliency",
                 "--out", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert err.startswith("cnnlab explain: error: the model's backward pass fails") and FIX in err
