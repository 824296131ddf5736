"""`cnnlab import` of weights that hold all of the model's names and more (a model trained in
plain PyTorch with an Inception-style auxiliary head, whose deployed version drops it), or
only some of them: the refusal named the names and no fix. It now says what to do; the fix
it gives, applied as written, imports, and the run predicts as torch's forward does."""

from __future__ import annotations

import re

import torch
from safetensors.torch import load_file, save_file

from cnnlab.cli import main
from cnnlab.train.rundir import load_run

NETS = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, aux=False, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.head = nn.Linear(4, classes)
        self.aux = nn.Linear(4, classes) if aux else None

    def forward(self, x):
        f = self.stem(x).mean((2, 3))
        if self.aux is not None and self.training:
            return self.head(f), self.aux(f)
        return self.head(f)


def make(aux=False):
    torch.manual_seed(0)
    return Net(aux)
"""


def _import(tmp_path, weights, out, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["import", "--model", f"{tmp_path / 'nets.py'}:make", "--weights", str(weights),
                 "--data", "digits", "--out", str(tmp_path / out)])  # fmt: skip
    return code, capsys.readouterr().err


def test_extra_names_are_refused_with_the_fix_and_the_fix_imports(tmp_path, capsys):
    (tmp_path / "nets.py").write_text(NETS)
    namespace: dict = {}
    exec(NETS, namespace)
    trained = namespace["make"](aux=True)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # weights of their own, not the factory's
    save_file(trained.state_dict(), tmp_path / "w.safetensors")
    code, err = _import(tmp_path, tmp_path / "w.safetensors", "run", capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "aux.weight" in err and "drop them" in err
    fix = re.search(r"(\{k: v for .*\})", err).group(1)
    state, model = load_file(tmp_path / "w.safetensors"), namespace["make"]()
    save_file(eval(fix, {"state": state, "model": model}), tmp_path / "fixed.safetensors")
    code, err = _import(tmp_path, tmp_path / "fixed.safetensors", "run", capsys)
    assert code == 0, err
    run = load_run(tmp_path / "run")
    x = torch.randn(4, 1, 8, 8)
    trained.eval()
    with torch.no_grad():
        assert torch.allclose(run.model(x), trained(x), atol=1e-6)


def test_missing_names_are_refused_with_the_fix(tmp_path, capsys):
    (tmp_path / "nets.py").write_text(NETS)
    namespace: dict = {}
    exec(NETS, namespace)
    state = namespace["make"]().state_dict()
    del state["head.bias"]
    save_file(state, tmp_path / "w.safetensors")
    code, err = _import(tmp_path, tmp_path / "w.safetensors", "run", capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "head.bias" in err and "save the whole model's state_dict" in err
