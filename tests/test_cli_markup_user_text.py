"""The user's strings reach the terminal as written: class names (folder names), layer names
(a ModuleDict key may hold any string but a dot), file and run paths. rich reads "[...]" in a
str as markup: a layer "k[/b]" raised MarkupError (a traceback, exit 1), a class "x[bold]y"
printed as "xy", a class "[i]a" as "a". Truth: the names as the file system and
model.named_modules() hold them, found verbatim in each command's output, and exit code 0."""

from __future__ import annotations

import re
import shutil
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnlab.cli import main

CLASSES = ("[i]a", "x[bold]y")  # sorted, as the loader reads them; a name holds no '/'
LAYERS = ("parts.k[/b]", "parts.x[bold]y")
NET = """
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.parts = nn.ModuleDict({
            "k[/b]": nn.Conv2d(1, 4, 3, padding=1),
            "x[bold]y": nn.ReLU(),
            "head": nn.Sequential(nn.Flatten(), nn.Linear(4 * 8 * 8, 2)),
        })

    def forward(self, x):
        for part in self.parts.values():
            x = part(x)
        return x


def make():
    return Net()
"""

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def wide(monkeypatch):
    """Tables wide enough that no path is folded across lines."""
    monkeypatch.setenv("COLUMNS", "400")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(root, data folder, model reference, run): 8×8 grey images, 10 bright and 10 dark, in
    two class folders with markup in their names, one unreadable file among them, and a run
    trained one epoch on them, copied to a directory whose name is markup too."""
    root = tmp_path_factory.mktemp("markup")
    data = root / "d[bold]ata"
    rng = np.random.default_rng(0)
    for k, name in enumerate(CLASSES):
        (data / name).mkdir(parents=True)
        for i in range(10):
            pixels = rng.integers(0, 60, (8, 8)) + 180 * k
            Image.fromarray(pixels.astype(np.uint8)).save(data / name / f"img[bold]{i}.png")
    (data / CLASSES[0] / "bad[i].png").write_bytes(b"not a png")
    net = root / "net.py"
    net.write_text(NET)
    model = f"{net}:make"
    assert _train(model, data, root / "run", "--json") == 0
    run = root / "r[i]un"
    shutil.copytree(root / "run", run)
    return root, data, model, run


def _train(model: str, data, out, *options: str) -> int:
    """`cnnlab train` of the tiny net for one epoch, without a progress bar."""
    tiny = ["--epochs", "1", "--batch-size", "4", "--quiet", *options]
    return main(["train", "--model", model, "--input", "1,8,8", "--data", str(data),
                 "--out", str(out), *tiny])  # fmt: skip


def test_data_prints_class_and_path_names(lab, capsys):
    _, data, _, _ = lab
    assert main(["data", str(data)]) == 0
    out = capsys.readouterr().out
    assert f"data: {data}" in out  # the title
    assert str(data) in out.split("\n", 3)[-1]  # the source column
    assert f"{CLASSES[0]} 8, {CLASSES[1]} 8" in out  # train counts: 20 % held out
    assert f"skipped (train) {data / CLASSES[0] / 'bad[i].png'}: " in out


def test_train_prints_the_run_directory(lab, capsys):
    root, data, model, _ = lab
    out_dir = root / "t[bold]rain"
    code = _train(model, data, out_dir)
    out = capsys.readouterr().out
    assert code == 0
    assert [line for line in out.splitlines() if line.strip() == f"run {out_dir}"], out


def test_eval_prints_class_names(lab, capsys):
    *_, run = lab
    assert main(["eval", str(run)]) == 0
    out = capsys.readouterr().out
    cells = [c.strip() for line in out.splitlines() for c in line.split("│")]
    for i, name in enumerate(CLASSES):
        assert name in cells, out  # per-class accuracy
        assert f"{i} {name}" in cells, out  # confusion matrix


def test_predict_table_prints_paths_and_classes(lab, capsys, monkeypatch):
    _, data, _, run = lab
    image = data / CLASSES[1] / "img[bold]0.png"
    capsys.readouterr()
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # the table, not the piped lines
    assert main(["predict", str(run), str(image), "--top", "2"]) == 0
    out = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)  # a terminal's colours
    assert str(image) in out, out
    for name in CLASSES:
        assert re.search(re.escape(name) + r" \d+\.\d%", out), out


def test_diagnose_prints_layer_names(lab, capsys):
    *_, run = lab
    assert main(["diagnose", str(run)]) == 0
    out = capsys.readouterr().out
    cells = [c.strip() for line in out.splitlines() for c in line.split("│")]
    assert cells.count(LAYERS[1]) == 2, out  # the ReLU: dead units, activation statistics
    assert LAYERS[0] in cells, out  # the conv: gradient flow


def test_probe_prints_layer_names_and_run(lab, capsys):
    *_, run = lab
    assert main(["probe", str(run), "--layers", *LAYERS, "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert f"linear probes on {run}" in " ".join(out.split()), out  # the title, wrapped
    cells = [c.strip() for line in out.splitlines() for c in line.split("│")]
    assert LAYERS[0] in cells and LAYERS[1] in cells, out


class DeadNet(nn.Module):
    """A ModuleDict net whose ReLU "r[/b]" never fires: its input is -1 everywhere."""

    def __init__(self):
        super().__init__()
        conv = nn.Conv2d(1, 4, 3, padding=1)
        with torch.no_grad():
            conv.weight.zero_()
            conv.bias.fill_(-1.0)
        head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 8 * 8, 2))
        self.parts = nn.ModuleDict({"c": conv, "r[/b]": nn.ReLU(), "h": head})

    def forward(self, x):
        for part in self.parts.values():
            x = part(x)
        return x


def test_diagnose_findings_print_layer_names(capsys):
    """A finding's message names the layer ("parts.r[/b]: 4/4 channels never fire"): the
    line is printed as written, as the tables are."""
    from cnnlab import diagnose
    from cnnlab.cli.diagnose import _print_tables

    model = DeadNet()
    x, y = torch.randn(16, 1, 8, 8), torch.tensor([0, 1] * 8)
    dead, acts = diagnose.dead_units(model, x), diagnose.activation_stats(model, x)
    flow = diagnose.gradient_flow(model, [(x, y)])
    found = diagnose.findings(dead, flow, acts)
    assert any(f.message.startswith("parts.r[/b]: ") for f in found), found
    _print_tables(dead, flow, acts, found)
    out = capsys.readouterr().out
    assert "dead-units: parts.r[/b]: 4/4 channels never fire" in out, out
