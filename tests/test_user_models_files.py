"""Models from a Python file (`--model nets.py:make_net`, `cnnlab import nets.py:make_net`):
the file edited after training, a model of it that returns a tuple, weights saved under a
wrapper or tied, code for RGB images trained on gray data, a package module reopened from
anywhere, a run imported without data served by the explorer, and a run of a Python object
told how to import it. Each misfit is one clear error naming the file and the fix, and the
fix works. Truth: the model's own forward and outputs, torch's own error text."""

from __future__ import annotations

import io
import json
import sys
import textwrap

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from safetensors.torch import load_file, save_file, save_model

from cnnlab.cli import main
from cnnlab.data import load_splits
from cnnlab.errors import CnnlabError, RunError
from cnnlab.explorer import create_app
from cnnlab.train import TrainConfig, train
from cnnlab.train.importing import import_run
from cnnlab.train.rundir import load_run
from cnnlab.train.source import parse_model_ref

QUICK = TrainConfig(epochs=1, batch_size=128, flip=False, tta=False, precision="fp32")
CLI_QUICK = ["--epochs", "1", "--no-flip", "--no-tta", "--precision", "fp32", "--quiet"]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


NET = """
from torch import nn


class Net(nn.Sequential):
    def forward(self, x):
        return super().forward(x)


def make_net(width=4):
    return Net(nn.Conv2d(1, width, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
               nn.Linear(width, 10))
"""


@pytest.fixture
def code_run(tmp_path, monkeypatch):
    """A run trained from nets.py:make_net through the CLI."""
    monkeypatch.setenv("CNNLAB_ACCEPT_CHANGED_CODE", "1")  # the file is edited below
    nets = tmp_path / "nets.py"
    nets.write_text(textwrap.dedent(NET))
    out = tmp_path / "run"
    argv = ["train", "--model", f"{nets}:make_net", "--data", "digits", "--out", str(out)]
    assert main([*argv, *CLI_QUICK]) == 0
    return nets, out


def test_code_edited_to_return_a_tuple_is_one_error_naming_the_file(code_run, capsys):
    nets, out = code_run
    nets.write_text(nets.read_text().replace("return super().forward(x)", "return x, x"))
    with pytest.raises(RunError, match=f"the model of {nets}:make_net does not fit.*a tuple"):
        load_run(out)  # was an AttributeError: 'tuple' object has no attribute 'dim'
    capsys.readouterr()
    assert main(["eval", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(nets) in err and len(err.strip().splitlines()) == 1


def test_code_edited_to_raise_or_to_other_weights_names_the_file(code_run):
    nets, out = code_run
    text = nets.read_text()
    nets.write_text(
        text.replace("return super()", "assert False, 'edited'\n        return super()")
    )
    with pytest.raises(RunError, match=f"{nets}:make_net does not fit.*AssertionError: edited"):
        load_run(out)
    nets.write_text(text.replace("width=4", "width=5"))
    with pytest.raises(RunError, match=f"does not match the model of {nets}:make_net: tensor"):
        load_run(out)


def test_import_refuses_a_tuple_model_with_the_fix(tmp_path):
    nets = tmp_path / "aux.py"
    nets.write_text(
        textwrap.dedent(NET).replace("return super().forward(x)", "return super().forward(x), 0")
    )
    source = parse_model_ref(f"{nets}:make_net")
    weights = tmp_path / "w.safetensors"
    save_file(source.build().state_dict(), weights)
    with pytest.raises(CnnlabError, match=r"returns a tuple.*net\(x\)\[0\]"):
        import_run(source, weights, tmp_path / "run", data="digits")
    assert not (tmp_path / "run").exists()


def test_probe_title_counts_the_images_used_not_the_limits_asked(code_run, capsys):
    _, out = code_run
    run = load_run(out)
    n_train, n_test = len(run.dataset("train")), len(run.dataset("test"))
    assert n_train < 5000 and n_test < 2000  # digits: fewer than the defaults
    capsys.readouterr()
    assert main(["probe", str(out), "--epochs", "5"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"({n_train} train / {n_test} test images)" in text


def test_import_of_weights_saved_under_a_wrapper_says_which_prefix_to_strip(tmp_path):
    nets = tmp_path / "nets.py"
    nets.write_text(textwrap.dedent(NET))
    source = parse_model_ref(f"{nets}:make_net")
    state = source.build().state_dict()
    weights = tmp_path / "ddp.safetensors"
    save_file({f"module.{k}": v for k, v in state.items()}, weights)  # as DDP saves it
    strip = r"behind 'module\.'.*k\.removeprefix\('module\.'\)"
    with pytest.raises(RunError, match=strip):
        import_run(source, weights, tmp_path / "run", data="digits")
    # the fix the message gives makes the import work
    fixed = {k.removeprefix("module."): v for k, v in state.items()}
    save_file(fixed, tmp_path / "fixed.safetensors")
    import_run(source, tmp_path / "fixed.safetensors", tmp_path / "run", data="digits")
    # the other way round: the model wraps the network the weights were saved from
    inner = tmp_path / "inner.safetensors"
    save_file({k.removeprefix("0."): v for k, v in state.items() if k.startswith("0.")}, inner)
    wrapped = parse_model_ref(f"{nets}:make_net")
    with pytest.raises(RunError) as info:
        import_run(wrapped, inner, tmp_path / "run2", data="digits")
    assert "prefix" not in str(info.value)  # only a part of the model: no prefix hint


RGB = """
from torch import nn


def make_net(classes=10):
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(4 * 8 * 8, classes),
    )
"""


def test_code_for_rgb_images_trains_on_grey_data_with_input(tmp_path, capsys):
    nets = tmp_path / "rgb.py"
    nets.write_text(textwrap.dedent(RGB))
    out = tmp_path / "run"
    argv = ["train", "--model", f"{nets}:make_net", "--data", "digits", "--out", str(out)]
    assert main([*argv, *CLI_QUICK]) == 2  # 3-channel code on 1×8×8 digits
    assert "give --input C,H,W" in capsys.readouterr().err
    assert main([*argv, "--input", "3,16,16", *CLI_QUICK]) == 0
    run = load_run(out)
    assert run.input_shape == (3, 16, 16) and run.source.input_shape == (3, 16, 16)
    _, test = load_splits("digits", channels=3, size=(16, 16))  # the loader's own conversion
    assert torch.equal(run.dataset("test").images, test.images)
    with torch.no_grad():  # the model's own forward on the converted images
        mine = (run.model(run.preprocess(test.images)).argmax(1) == test.labels).float().mean()
    capsys.readouterr()
    assert main(["eval", str(out), "--json"]) == 0
    reported = json.loads(capsys.readouterr().out)["accuracy"]
    assert reported == pytest.approx(mine.item(), abs=1e-6)
    assert (
        main(["train", "--preset", "fast", "--input", "3,16,16", "--out", str(tmp_path / "s")]) == 2
    )
    assert "--input is for --model code" in capsys.readouterr().err


def test_a_package_module_reference_works_from_its_directory_and_reopens_anywhere(
    tmp_path, monkeypatch
):
    """`--model mynets.models:make_net` from the directory holding `mynets/`, as `python -m`
    and uvicorn find it (the `cnnlab` script's sys.path has no working directory)."""
    package = tmp_path / "project" / "usernets_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(textwrap.dedent(NET))
    monkeypatch.chdir(tmp_path / "project")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".")])
    out = tmp_path / "run"
    argv = ["train", "--model", "usernets_pkg.models:make_net", "--data", "digits"]
    assert main([*argv, "--out", str(out), *CLI_QUICK]) == 0
    for name in ("usernets_pkg", "usernets_pkg.models"):  # imported afresh on reopening
        monkeypatch.delitem("sys.modules", name, raising=False)
    monkeypatch.chdir(tmp_path)  # elsewhere: the recorded file's package root is used
    run = load_run(out)
    assert run.source.file == package / "models.py"
    x = torch.randn(2, 1, 8, 8)
    assert run.model(x).shape == (2, 10)


TIED = """
import torch
from torch import nn


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4, 4)
        self.back = nn.Linear(4, 4)
        self.back.weight = self.fc.weight  # a tied weight
        self.out = nn.Linear(4, 10)

    def forward(self, x):
        h = torch.relu(self.conv(x)).mean((2, 3))
        return self.out(self.back(torch.relu(self.fc(h))))


def make_net():
    torch.manual_seed(3)
    return Tied()
"""


def test_import_takes_tied_weights_saved_as_safetensors_asks(tmp_path):
    nets = tmp_path / "tied.py"
    nets.write_text(textwrap.dedent(TIED))
    source = parse_model_ref(f"{nets}:make_net")
    model = source.build().eval()
    weights = tmp_path / "tied.safetensors"
    save_model(model, str(weights))  # save_file refuses shared tensors and says to use this
    assert len(load_file(weights)) == len(model.state_dict()) - 1  # one name of the pair kept
    import_run(source, weights, tmp_path / "run", data="digits")
    run = load_run(tmp_path / "run")
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(run.model(x), model(x), rtol=0, atol=0)  # its own forward
    assert run.model.back.weight is run.model.fc.weight  # still one tensor


def test_the_explorer_serves_a_run_imported_without_data_on_uploads(tmp_path, capsys):
    nets = tmp_path / "nets.py"
    nets.write_text(textwrap.dedent(NET))
    source = parse_model_ref(f"{nets}:make_net")
    weights = tmp_path / "w.safetensors"
    save_file(source.build().state_dict(), weights)
    classes = [str(i) for i in range(10)]
    out = tmp_path / "run"
    import_run(source, weights, out, classes=classes, mean=[0.3], std=[0.4], input_shape=[1, 8, 8])
    run = load_run(out)
    client = TestClient(create_app(run))  # was RunError: the run records no data set
    assert client.get("/api/model").json()["test_images"] == 0
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)
    png = io.BytesIO()
    Image.fromarray(pixels).save(png, format="PNG")
    answer = client.post("/api/predict", files={"image": ("x.png", png.getvalue(), "image/png")})
    assert answer.status_code == 200
    x = run.preprocess(torch.from_numpy(pixels)[None, None])  # the model's own forward
    with torch.no_grad():
        torch.testing.assert_close(torch.tensor(answer.json()["logits"]), run.model(x)[0])
    assert client.get("/api/actmax", params={"layer": "0", "channel": 0}).status_code == 200
    refused = client.post("/api/predict", data={"sample": "0"})
    assert refused.status_code == 400 and "no test images" in refused.json()["error"]
    assert "no test images" in client.get("/api/top", params={"layer": "1", "channel": 0}).text


def test_a_python_object_run_tells_the_commands_how_to_import_it_and_that_works(tmp_path, capsys):
    nets = tmp_path / "nets.py"
    nets.write_text(textwrap.dedent(NET))
    model = parse_model_ref(f"{nets}:make_net").build()
    out = tmp_path / "run"
    train(model, "digits", out, QUICK)
    capsys.readouterr()
    assert main(["eval", str(out)]) == 2
    said = capsys.readouterr().err.strip()
    command = said.split("cnnlab import ", 1)[1].split()  # the command the message gives
    command = [f"{nets}:make_net" if a == "file.py:factory" else a for a in command]
    command = [str(tmp_path / "new") if a == "NEW_RUN" else a for a in command]
    assert main(["import", *command]) == 0
    x = torch.randn(3, 1, 8, 8)
    own = load_run(out, model=parse_model_ref(f"{nets}:make_net").build())
    torch.testing.assert_close(load_run(tmp_path / "new").model(x), own.model(x))
    assert main(["eval", str(tmp_path / "new")]) == 0
