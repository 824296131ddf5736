"""A model compiled whole (`return torch.compile(net)`) or with a compiled child, through the
check every command runs first and through the commands that open its run."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.inspect import classifier_misfit


def _net(classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, classes),
    )  # fmt: skip


def test_the_classifier_check_takes_a_model_compiled_whole_and_still_names_a_misfit():
    """The check's hooks, traced by dynamo inside a compiled root, made it fail with dynamo's
    own AssertionError ('already tracked for mutation'), so `train` and `import` refused a
    model that runs. Truth: the plain model's own forward gives (2, 3) logits."""
    plain = _net()
    assert plain(torch.zeros(2, 1, 8, 8)).shape == (2, 3)
    compiled = torch.compile(plain)
    assert classifier_misfit(compiled, (1, 8, 8), 3) is None
    assert classifier_misfit(compiled, (1, 8, 8), 3, memory_format=torch.channels_last) is None
    misfit = classifier_misfit(compiled, (1, 8, 8), 5)
    assert misfit is not None and misfit.kind == "classes"


NETS = """
import pytest
import torch
from torch import nn


def plain():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10),
    )


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        net = plain()
        self.features = torch.compile(net[:4])
        self.head = net[4:]

    def forward(self, x):
        return self.head(self.features(x))


def child():
    return Net()


def whole():
    return torch.compile(plain())
"""


def _imported(tmp_path, factory: str, weights):
    """A run of NETS' `factory` imported with `weights` (a state dict) on digits."""
    from safetensors.torch import save_file

    from cnnlab.train.importing import import_run
    from cnnlab.train.source import parse_model_ref

    nets = tmp_path / "cnets.py"
    nets.write_text(NETS)
    save_file(weights, tmp_path / f"{factory}.safetensors")
    out = tmp_path / f"run_{factory}"
    source = parse_model_ref(f"{nets}:{factory}")
    return import_run(source, tmp_path / f"{factory}.safetensors", out, data="digits"), out


def _plain_module(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("cnets_truth", tmp_path / "cnets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.plain().eval()


def _named(state: dict, factory: str, *, compiled: bool) -> dict:
    """The plain net's weights under the names of NETS' `factory`, eager (`features.2.weight`)
    or as the compiled model's state_dict gives them (`features._orig_mod.2.weight`)."""
    wrapper = "_orig_mod." if compiled else ""
    if factory == "whole":
        return {f"{wrapper}{k}": v for k, v in state.items()}
    return {
        (f"features.{wrapper}{k}" if int(k.split(".")[0]) < 4 else f"head.{k}"): v
        for k, v in state.items()
    }


@pytest.mark.parametrize("factory", ["child", "whole"])
@pytest.mark.parametrize("names", ["plain", "compiled"])
def test_a_compiled_model_imports_either_names_and_opens_eager_as_the_user_names_it(
    tmp_path, factory, names
):
    """Weights saved from the plain net (`0.weight`) or from the compiled model
    (`features._orig_mod.0.weight`, as its state_dict names them) import into a factory that
    compiles a child or the whole net; the run opens without a torch.compile wrapper (no
    command compiles a graph to run a few batches), its layers named as in the plain net,
    and its logits, accuracy included, are the plain net's own forward on the test images."""
    from cnnlab.inspect import default_layer
    from cnnlab.train.rundir import load_run

    (tmp_path / "cnets.py").write_text(NETS)
    truth = _plain_module(tmp_path)
    state = _named(truth.state_dict(), factory, compiled=names == "compiled")
    result, out = _imported(tmp_path, factory, state)
    run = load_run(out)
    assert not any(type(m).__name__ == "OptimizedModule" for m in run.model.modules())
    assert all("_orig_mod" not in n for n, _ in run.model.named_modules())
    data = run.dataset("test")
    x = run.preprocess(data.images)
    with torch.no_grad():
        want = truth(x)
        torch.testing.assert_close(run.model(x), want)
    accuracy = (want.argmax(1) == data.labels).float().mean().item()
    assert result["evaluation"]["accuracy"] == pytest.approx(accuracy)
    layer = default_layer(run.model, x[:1])
    assert layer == ("features" if factory == "child" else "3")  # Grad-CAM's default


def test_a_run_saved_with_compiled_names_opens_with_the_same_weights(tmp_path):
    """Training a model with a compiled child saves `features._orig_mod.0.weight`: such a run
    opens, eager, with those weights (truth: the plain net's forward)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from cnnlab.train.rundir import MODEL_WEIGHTS, load_run

    (tmp_path / "cnets.py").write_text(NETS)
    truth = _plain_module(tmp_path)
    _, out = _imported(tmp_path, "child", _named(truth.state_dict(), "child", compiled=False))
    weights = out / MODEL_WEIGHTS
    with safe_open(weights, framework="pt") as f:
        metadata = f.metadata()
    saved = load_file(weights)
    assert "features.0.weight" in saved  # the run imported writes the eager names
    compiled = {k.replace("features.", "features._orig_mod."): v for k, v in saved.items()}
    save_file(compiled, weights, metadata=metadata)  # as training the compiled model writes
    run = load_run(out)
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(run.model(x), truth(x))


def test_summary_of_a_compiled_factory_names_rows_as_its_run_does(tmp_path, capsys):
    """`cnnlab summary --model` of a factory that compiles a child showed rows named
    `features._orig_mod.0`, names no command that opens the run accepts; its rows now carry
    the names of the run's model (`load_run`), the rest as the plain net's summary."""
    import json

    from cnnlab import summary
    from cnnlab.cli import main

    (tmp_path / "cnets.py").write_text(NETS)
    truth = _plain_module(tmp_path)
    assert main(["summary", "--model", f"{tmp_path / 'cnets.py'}:child", "--input", "1,8,8",
                 "--json"]) == 0  # fmt: skip
    rows = json.loads(capsys.readouterr().out)["rows"]
    _, out = _imported(tmp_path, "child", _named(truth.state_dict(), "child", compiled=False))
    from cnnlab.train.rundir import load_run

    names = dict(load_run(out).model.named_modules())
    assert [r["name"] for r in rows] == [
        "features.0", "features.1", "features.2", "features.3", "head.4", "head.5", "head.6"
    ] and all(r["name"] in names for r in rows)  # fmt: skip
    plain = summary(truth, (1, 8, 8)).to_dict()["rows"]
    assert [{**r, "name": ""} for r in rows] == [{**r, "name": ""} for r in plain]


@pytest.mark.parametrize("reopen", ["plain", "compiled"])
def test_a_run_trained_from_a_compiled_module_reopens_with_a_fresh_plain_or_compiled_one(
    tmp_path, reopen
):
    """`train(torch.compile(net), ...)` saves `_orig_mod.0.weight`; `load_run(out,
    model=MyNet())` named them missing and stopped. Either fresh instance now takes the
    weights (truth: the trained module's own forward)."""
    from cnnlab.train import TrainConfig, load_run, train

    trained = torch.compile(_net(10), backend="eager")  # names as inductor's, compiled faster
    config = TrainConfig(epochs=1, batch_size=64, ema=None, bn_recalibrate=0, tta=False)
    result = train(trained, "digits", tmp_path / "run", config)
    fresh = _net(10) if reopen == "plain" else torch.compile(_net(10), backend="eager")
    with torch.no_grad():
        for p in fresh.parameters():
            p.zero_()
    run = load_run(tmp_path / "run", model=fresh)
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(run.model(x), result["model"]._orig_mod(x))


DECORATED = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))

    @torch.compile(backend="eager")  # dynamo traces as with inductor, without its compile time
    def forward(self, x):
        return self.head(self.features(x))


def make():
    return Net()
"""


def test_commands_that_read_a_run_run_a_compiled_forward_eagerly(tmp_path, capsys):
    """`@torch.compile` on forward (no wrapper module to unwrap): import, eval, diagnose and
    summary traced graphs for each batch shape and wrote dynamo's warnings (summary failed
    inside dynamo). They now compile nothing (dynamo's graph counter stays 0), and eval's
    accuracy is the plain forward's (truth: head(features(x)), no compiled code)."""
    import json

    from safetensors.torch import save_file
    from torch._dynamo.utils import counters

    from cnnlab.cli import main
    from cnnlab.train.rundir import load_run
    from cnnlab.train.source import parse_model_ref

    nets = tmp_path / "deco.py"
    nets.write_text(DECORATED)
    ref = f"{nets}:make"
    save_file(parse_model_ref(ref).build().state_dict(), tmp_path / "w.safetensors")
    torch._dynamo.reset()
    counters.clear()
    out = tmp_path / "run"
    assert main(["import", "--model", ref, "--weights", str(tmp_path / "w.safetensors"),
                 "--data", "digits", "--out", str(out)]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["eval", str(out), "--json"]) == 0
    accuracy = json.loads(capsys.readouterr().out)["accuracy"]
    assert main(["diagnose", str(out), "--json", "--limit", "50"]) == 0
    assert main(["summary", "--model", ref, "--input", "1,8,8"]) == 0
    assert counters["stats"]["unique_graphs"] == 0
    run = load_run(out)
    data = run.dataset("test")
    with torch.no_grad():
        logits = run.model.head(run.model.features(run.preprocess(data.images)))
    assert accuracy == pytest.approx((logits.argmax(1) == data.labels).float().mean().item())


class _CompiledChild(nn.Module):
    """A plain net whose first four layers are a torch.compile'd child."""

    def __init__(self) -> None:
        super().__init__()
        net = _net(10)
        self.features = torch.compile(net[:4], backend="eager")  # dynamo, without inductor
        self.head = net[4:]

    def forward(self, x):
        return self.head(self.features(x))


def test_per_epoch_diagnostics_name_layers_as_the_opened_run_does(tmp_path):
    """Training with --diagnose-every on a model with a compiled child stored layers as
    `features._orig_mod.0` while every command that opens the run names them `features.0`.
    Truth: the layer names of the model the run opens as (decompiled), and the plain net's
    parameters-holding layers."""
    import json

    from cnnlab.inspect.preserve import decompiled
    from cnnlab.train import TrainConfig, train

    config = TrainConfig(epochs=1, batch_size=64, ema=None, bn_recalibrate=0, tta=False,
                         diagnose_every=1)  # fmt: skip
    train(_CompiledChild(), "digits", tmp_path / "run", config)
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    names = {n for n, _ in decompiled(_CompiledChild()).named_modules()}
    for key in ("dead_share", "grad_norm"):
        found = set(row["diagnose"][key])
        assert found and found <= names, (key, found)
    assert set(row["diagnose"]["grad_norm"]) == {"features.0", "features.3", "head.7"}
