"""`cnnlab import` of weights trained for another number of classes (the model's last layer
gives 10 outputs, the file's 5): the refusal named the tensor's two shapes and no fix. It
now says to build the model with 5 outputs and import with data of those classes, or
without data; done as it says, the import runs, and the run's logits are those of the
module that saved the weights (torch's forward)."""

from __future__ import annotations

import torch
from safetensors.torch import save_file

from cnnlab.cli import main
from cnnlab.train.rundir import load_run

NETS = """
import torch
from torch import nn


def make(classes=10):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, classes))
"""


def test_weights_for_other_classes_are_refused_with_the_fix_that_imports_them(tmp_path, capsys):
    (tmp_path / "nets.py").write_text(NETS)
    namespace: dict = {}
    exec(NETS, namespace)
    theirs = namespace["make"](classes=5).eval()
    save_file(theirs.state_dict(), tmp_path / "w.safetensors")
    common = ["import", "--model", f"{tmp_path / 'nets.py'}:make", "--weights",
              str(tmp_path / "w.safetensors")]  # fmt: skip
    capsys.readouterr()
    code = main([*common, "--data", "digits", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "last layer 5 gives 5 outputs, the model's 10" in err
    assert "--model-arg NAME=5" in err and "without --data" in err
    code = main([*common, "--model-arg", "classes=5", "--classes", "a,b,c,d,e", "--mean", "0.3",
                 "--std", "0.4", "--input", "1,8,8", "--out", str(tmp_path / "run")])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    run = load_run(tmp_path / "run")
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(run.model(x), theirs(x), atol=1e-6)
    assert run.classes == tuple("abcde")
