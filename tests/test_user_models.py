"""Models as practitioners write them, brought to cnnlab: the ways they fail to be a plain
classifier of the run's images (a forward that raises, a tuple or dict output, another
dtype, a final softmax, a file edited after training) are each one clear error naming the
layer or the file and the fix. Truth: torch's own forward of the same layers and its own
error text, and the model's own outputs."""

from __future__ import annotations

import dataclasses
import io
import json
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from safetensors.torch import load_file, save_file, save_model
from torch import nn

import cnnlab
from cnnlab.cli import main
from cnnlab.data import load_splits
from cnnlab.errors import CnnlabError, RunError, SpecError
from cnnlab.explain.probe import default_probe_layers
from cnnlab.explorer import create_app
from cnnlab.inspect import classifier_misfit
from cnnlab.report import plots
from cnnlab.train import TrainConfig, train
from cnnlab.train.importing import import_run
from cnnlab.train.rundir import load_run
from cnnlab.train.source import parse_model_ref

QUICK = TrainConfig(epochs=1, batch_size=128, flip=False, tta=False, precision="fp32")
CLI_QUICK = ["--epochs", "1", "--no-flip", "--no-tta", "--precision", "fp32", "--quiet"]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


def small(classes: int = 10) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, classes),
    )  # fmt: skip


class Pair(nn.Module):
    """Logits and an auxiliary head, as a tuple or a dict."""

    def __init__(self, as_dict: bool = False):
        super().__init__()
        self.body, self.as_dict = small(), as_dict
        self.aux = nn.Linear(10, 10)

    def forward(self, x):
        logits = self.body(x)
        return {"logits": logits, "aux": self.aux(logits)} if self.as_dict else (logits, None)


class Asserting(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        assert x.shape[-1] == 28, "this net takes 28×28 images"
        return self.fc(x.flatten(1))


def test_a_failing_layer_is_named_with_the_shape_torch_gave_it():
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.Flatten(), nn.Linear(8 * 30 * 30, 10))
    x = torch.zeros(2, 1, 8, 8)
    got = model[:2](x)  # torch's own forward up to the failing layer: (2, 288)
    with pytest.raises(RuntimeError) as torch_error:
        model[2](got)
    misfit = classifier_misfit(model, (1, 8, 8), 10)
    assert misfit.kind == "run"
    shape = "×".join(map(str, got.shape))
    torch_says = str(torch_error.value).splitlines()[0]
    assert misfit.why == f"{torch_says} (in layer 2, a Linear, given {shape})"


def test_train_names_the_layer_and_any_error_of_the_users_forward_is_one_line():
    wrong = nn.Sequential(nn.Conv2d(1, 8, 3), nn.Flatten(), nn.Linear(8 * 30 * 30, 10))
    where = r"cannot run on 1×8×8 images: mat1 .* \(in layer 2, a Linear, given 2×288\)"
    with pytest.raises(SpecError, match=where):
        train(wrong, "digits", None, QUICK)
    # an assert in forward is no RuntimeError: it was a traceback
    where = r"AssertionError: this net.* \(in Asserting.forward, given 2×1×8×8\)"
    with pytest.raises(SpecError, match=where):
        train(Asserting(), "digits", None, QUICK)


@pytest.mark.parametrize(
    ("model", "pick"),
    [(Pair(), r"net\(x\)\[0\]"), (Pair(as_dict=True), r"net\(x\)\['logits'\]")],
)
def test_a_tuple_or_dict_output_says_how_to_return_the_logits(model, pick):
    assert isinstance(model.eval()(torch.zeros(2, 1, 8, 8)), tuple | dict)  # the model's own
    with pytest.raises(SpecError, match=f"returns a (tuple|dict), not a logits tensor.*{pick}"):
        train(model, "digits", None, QUICK)


def test_an_output_object_with_logits_is_told_to_return_them():
    class Output(dict):  # a transformers ModelOutput: a dict whose fields are attributes too
        __getattr__ = dict.__getitem__

    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = small()

        def forward(self, x):
            return Output(logits=self.net(x))

    misfit = classifier_misfit(Wrapped(), (1, 8, 8), 10)
    assert misfit.kind == "output" and "returns an Output" in misfit.why
    assert "net(x).logits" in misfit.why


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_a_model_of_another_dtype_is_told_to_become_float32(dtype):
    model = small().to(dtype)
    with pytest.raises(RuntimeError):  # torch's own refusal, which was the message
        model(torch.zeros(1, 1, 8, 8))
    name = str(dtype).removeprefix("torch.")
    with pytest.raises(
        SpecError, match=rf"its parameters are {name} \(0.weight\).*model.float\(\)"
    ):
        train(model, "digits", None, QUICK)
    result = train(model.float(), "digits", None, QUICK)  # the fix given works
    assert 0 <= result["val_acc"] <= 1


def test_a_final_softmax_is_refused_before_training_not_trained_twice_softmaxed():
    model = nn.Sequential(small(), nn.Softmax(1))
    probs = model.eval()(torch.randn(4, 1, 8, 8))
    assert torch.allclose(probs.sum(1), torch.ones(4))  # what the check recognises
    with pytest.raises(SpecError, match="ends in a softmax.*return the logits"):
        train(model, "digits", None, QUICK)
    # logits that happen to be non-negative do not sum to 1: no false alarm
    relu_end = nn.Sequential(small(), nn.ReLU())
    assert classifier_misfit(relu_end.eval(), (1, 8, 8), 10) is None


def test_class_indices_instead_of_logits_are_named():
    class Argmax(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = small()

        def forward(self, x):
            return self.net(x).argmax(1)

    misfit = classifier_misfit(Argmax(), (1, 8, 8), 10)
    assert misfit.kind == "output" and "int64 values of shape (2,)" in misfit.why


def test_the_check_leaves_no_hook_behind_and_passes_a_good_model():
    model = small()
    x = torch.randn(3, 1, 8, 8)
    before = model(x)
    assert classifier_misfit(model, (1, 8, 8), 10) is None
    broken = nn.Sequential(nn.Flatten(), nn.Linear(50, 10))
    assert classifier_misfit(broken, (1, 8, 8), 10).kind == "run"
    hooks = [m._forward_hooks or m._forward_pre_hooks for m in [*model.modules(), *broken]]
    assert not any(hooks)
    assert torch.equal(model(x), before)


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


class Logits(nn.Module):
    """A wrapper practitioners write around a library model: forward returns its logits."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        out = self.net(pixel_values=x) if hasattr(self.net, "config") else self.net(x)
        return out.logits if hasattr(out, "logits") else out


def test_probe_layers_of_a_wrapped_model_are_the_inner_models_blocks():
    inner = Logits(
        nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(4, 8, 3),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8, 10),
        )
    )  # fmt: skip  (a module of its own, not a container, around the layers)
    x = torch.zeros(1, 1, 8, 8)
    own = default_probe_layers(inner, x)
    assert len(own) == 8  # the truth: what the same network gets unwrapped
    assert default_probe_layers(Logits(inner), x) == [f"net.{name}" for name in own]


def tiny_hf_resnet() -> nn.Module:
    """A two-stage transformers ResNet for 3 classes, its logits unwrapped (`Logits`)."""
    transformers = pytest.importorskip("transformers")
    config = transformers.ResNetConfig(
        num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
        layer_type="basic", num_labels=3,
    )  # fmt: skip
    return Logits(transformers.ResNetForImageClassification(config))


def test_probe_layers_of_a_transformers_model_are_its_stages():
    model = tiny_hf_resnet().eval()
    layers = default_probe_layers(model, torch.zeros(1, 3, 24, 24))
    stages = [n for n, m in model.named_modules() if type(m).__name__ == "ResNetStage"]
    assert len(stages) == 2 and all(stage in layers for stage in stages)
    assert layers[0] == "net.resnet.embedder" and layers[-1] == "net.classifier.1"


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


def test_a_run_of_a_python_module_says_how_to_open_it_and_that_way_works(tmp_path):
    import cnnlab.train

    result = train(small(), "digits", tmp_path / "run", QUICK)
    with pytest.raises(RunError, match=r"cnnlab\.train\.load_run\(path, model=") as info:
        load_run(tmp_path / "run")
    opener = str(info.value).split("with ", 1)[1].split("(", 1)[0]  # what the message names
    module, name = opener.rsplit(".", 1)
    assert module == "cnnlab.train"
    run = getattr(cnnlab.train, name)(tmp_path / "run", model=small())
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(run.model(x), result["model"](x))  # the model trained (EMA)


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


class AuxWhileTraining(nn.Module):
    """Inception-style: (logits, aux logits) in training mode, logits alone in eval."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.fc, self.aux = nn.Linear(4, 10), nn.Linear(4, 10)

    def forward(self, x):
        h = self.body(x).mean((2, 3))
        return (self.fc(h), self.aux(h)) if self.training else self.fc(h)


def test_a_model_returning_aux_logits_while_training_is_refused_before_a_step():
    model = AuxWhileTraining().eval()
    assert isinstance(model(torch.zeros(2, 1, 8, 8)), torch.Tensor)  # fine in eval mode
    assert isinstance(model.train()(torch.zeros(2, 1, 8, 8)), tuple)  # not while training
    model = AuxWhileTraining().eval()
    stats = [b.clone() for b in model.buffers()]
    with pytest.raises(SpecError, match=r"in training mode returns a tuple.*net\(x\)\[0\]"):
        train(model, "digits", None, QUICK)  # was an AttributeError inside the loss
    assert all(torch.equal(a, b) for a, b in zip(stats, model.buffers(), strict=True))
    assert not model.training  # its mode left as it was


class ViewNet(nn.Module):
    """The tutorials' head: x.view(x.size(0), -1) after a conv."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 4, 3, padding=1), nn.Linear(4 * 4 * 4, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc(x.view(x.size(0), -1))


def test_view_after_a_conv_is_told_to_reshape_or_train_nchw_not_a_traceback():
    nhwc = ViewNet().to(memory_format=torch.channels_last)  # torch's own refusal
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        nhwc(torch.zeros(2, 1, 8, 8).contiguous(memory_format=torch.channels_last))
    assert QUICK.channels_last  # the default layout
    fix = r"cannot train channels-last.*view size.*\.reshape or \.flatten\(1\).*--no-channels-last"
    with pytest.raises(SpecError, match=fix):
        train(ViewNet(), "digits", None, QUICK)  # was a RuntimeError traceback at step 1
    nchw = dataclasses.replace(QUICK, channels_last=False)  # the fix given works
    assert 0 <= train(ViewNet(), "digits", None, nchw)["val_acc"] <= 1


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


def test_report_figures_of_a_deep_models_layer_names_lay_out():
    model = tiny_hf_resnet()
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert max(map(len, names)) > 50  # net.resnet.encoder.stages.1.layers.0.layer.0.convolution
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "Tight layout not applied" was raised
        plots.receptive_fields(names, [3.0] * len(names), [2.0] * len(names))
        plots.probe(names, [0.5] * len(names), 0.3)
        plots.hbars(names, [1.0] * len(names), "L2", "gradient flow")
    for name in [*names, "fc", "layer4.1"]:
        label = plots.layer_label(name)
        assert label == name if len(name) <= plots.LABEL_CHARS else len(label) == 30
        assert name.endswith(label.removeprefix("…"))


def test_the_explorers_layers_say_which_call_of_a_module_run_twice(tmp_path):
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(1, 4, 3, padding=1)
            self.block = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
            self.fc = nn.Linear(4, 10)

        def forward(self, x):
            return self.fc(self.block(self.block(self.stem(x))).mean((2, 3)))

    model = Twice()
    train(model, "digits", tmp_path / "run", QUICK)
    run = load_run(tmp_path / "run", model=Twice())
    rows = TestClient(create_app(run)).get("/api/model").json()["architecture"]["rows"]
    truth = cnnlab.summary(Twice(), (1, 8, 8)).rows  # the summary's own rows, one per call
    assert [(r["name"], r["call"]) for r in rows] == [(r.name, r.call) for r in truth]
    assert ("block.0", 2) in [(r["name"], r["call"]) for r in rows]
