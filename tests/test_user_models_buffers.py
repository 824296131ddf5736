"""A buffer a model registers only in train mode (`if self.training and not hasattr(...)`):
training saves it with the weights, a fresh instance lacks it, and no eval-mode forward
makes it. Every command that opened such a run refused its weights ('not in the model').
Truth: the saved tensors, the model's own forward on them, training's own evaluation."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from cnnlab.cli import main
from cnnlab.explain import gradcam
from cnnlab.train import load_run
from cnnlab.train.rundir import made_in_forward
from cnnlab.train.source import parse_model_ref

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

QUICK = ["--epochs", "1", "--batch-size", "128", "--no-flip", "--no-tta", "--precision", "fp32"]

TRAIN_ONLY = textwrap.dedent(
    """
    import torch
    from torch import nn
    import torch.nn.functional as F

    class Centred(nn.Module):
        '''Subtracts the first training batch's mean image, kept in a buffer registered at
        the first train-mode forward.{doc}'''

        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(1, 8, 3, padding=1)
            self.bn = nn.BatchNorm2d(8)
            self.fc = nn.Linear(8, 10)

        def forward(self, x):
            if self.training and not hasattr(self, "mean_image"):
                self.register_buffer("mean_image", x.detach().mean(0, keepdim=True))
            {use}
            return self.fc(F.relu(self.bn(self.stem(x))).mean((2, 3)))

    def make_net():
        return Centred()
    """
)
IF_PRESENT = 'x = x - self.mean_image if hasattr(self, "mean_image") else x'
ALWAYS = "x = x - self.mean_image"  # eval mode reads it unconditionally


def _opens_as_saved(out, capsys, loss: float) -> None:
    """eval's loss is the one measured when the run was made; the run's model holds the
    saved tensors and computes what its forward computes by hand on them."""
    assert main(["eval", str(out), "--json"]) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["loss"] == pytest.approx(loss, rel=1e-5)
    saved = load_file(out / "model.safetensors")
    run = load_run(out)
    assert not run.model.training
    assert torch.equal(run.model.mean_image, saved["mean_image"])
    x = run.preprocess(run.dataset("test").images[:4])
    m = run.model
    with torch.no_grad():
        want = m.fc(torch.relu(m.bn(m.stem(x - saved["mean_image"]))).mean((2, 3)))
        assert torch.equal(m(x), want)
    assert gradcam(m, x, layer="bn").shape == (4, 8, 8)


def test_a_trained_run_whose_model_makes_a_buffer_only_in_training_opens(tmp_path, capsys):
    (tmp_path / "net.py").write_text(TRAIN_ONLY.format(doc="", use=IF_PRESENT))
    out = tmp_path / "run"
    ref = f"{tmp_path / 'net.py'}:make_net"
    assert main(["train", "--model", ref, "--data", "digits", "--out", str(out), "--quiet",
                 "--json", *QUICK]) == 0  # fmt: skip
    _opens_as_saved(out, capsys, json.loads(capsys.readouterr().out)["test_loss"])


def test_an_imported_model_whose_eval_forward_needs_its_train_mode_buffer(tmp_path, capsys):
    """Its eval-mode forward fails on a fresh instance (no such attribute): only a
    train-mode forward makes the buffer."""
    (tmp_path / "net.py").write_text(TRAIN_ONLY.format(doc=" Eval reads it.", use=ALWAYS))
    ref = f"{tmp_path / 'net.py'}:make_net"
    model = parse_model_ref(ref, []).build()
    model(torch.randn(4, 1, 8, 8))  # train mode: makes the buffer
    save_file(model.state_dict(), tmp_path / "w.safetensors")
    out = tmp_path / "run"
    assert main(["import", "--model", ref, "--weights", str(tmp_path / "w.safetensors"),
                 "--data", "digits", "--out", str(out), "--json"]) == 0  # fmt: skip
    _opens_as_saved(out, capsys, json.loads(capsys.readouterr().out)["evaluation"]["loss"])


def test_the_train_mode_forward_leaves_the_model_as_it_was():
    """The forward that makes the buffer runs in train mode: BatchNorm's statistics, the
    mode and the RNG are put back (`preserved(train=True)`); only the new buffer stays."""
    namespace: dict = {}
    exec(TRAIN_ONLY.format(doc="", use=""), namespace)  # noqa: S102 (the test's own code)
    model = namespace["make_net"]().eval()
    with torch.no_grad():
        model.bn.running_mean.uniform_()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    state = {**before, "mean_image": torch.ones(1, 1, 8, 8)}
    made_in_forward(model, state, (1, 8, 8))
    assert "mean_image" in model.state_dict() and not model.training
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert torch.equal(torch.get_rng_state(), rng)


def test_a_name_no_forward_makes_is_still_refused(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten())
    state = {**model.state_dict(), "other": torch.zeros(1)}
    made_in_forward(model, state, (1, 8, 8))
    assert "other" not in model.state_dict() and model.training
