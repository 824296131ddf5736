"""Models that carry hooks of their own, as explanation code written elsewhere leaves them:
guided-backprop hooks on every ReLU (a full backward hook that clamps the gradient), hooks
that log. Truth: Captum and plain autograd on the same hooked model."""

from __future__ import annotations

import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam, Saliency
from torch import nn

from cnnlab import explain

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


def guided() -> nn.Sequential:
    """A small CNN whose ReLUs carry guided-backprop hooks: the gradient to a ReLU's input
    is clamped at 0 (it reads grad_input, which torch gives a full backward hook)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
    ).eval()  # fmt: skip
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.register_full_backward_hook(lambda m, grad_in, grad_out: (grad_in[0].clamp(min=0),))
    return model


def captum_gradcam(model: nn.Module, layer: nn.Module, x: torch.Tensor, t: torch.Tensor):
    cam = LayerGradCam(model, layer).attribute(x, t, relu_attributions=True)
    cam = LayerAttribution.interpolate(cam, x.shape[-2:], interpolate_mode="bilinear")[:, 0]
    peak = cam.amax((1, 2), keepdim=True)
    return torch.where(peak > 0, cam / peak.clamp_min(1e-30), 0.0)


@pytest.mark.filterwarnings("error")  # torch's "Full backward hook is firing ..." was raised
def test_grad_cam_at_a_layer_with_a_guided_backprop_hook_equals_captums():
    model = guided()
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        t = model(x).argmax(1)
    for name in ("3", "1"):  # the default layer (the last ReLU), and one the hook of 3 is after
        truth = captum_gradcam(model, model.get_submodule(name), x, t)
        # was AttributeError: 'NoneType' object has no attribute 'clamp', inside the hook
        torch.testing.assert_close(explain.gradcam(model, x, layer=name), truth)
    torch.testing.assert_close(explain.gradcam(model, x), captum_gradcam(model, model[3], x, t))
    # the hooks still act where plain autograd runs them: guided saliency
    sal = Saliency(model).attribute(x.clone().requires_grad_(), t, abs=True).amax(1)
    torch.testing.assert_close(explain.saliency(model, x), sal)
    assert all(m._backward_hooks for m in model if isinstance(m, nn.ReLU))  # left in place


def scripted_child() -> nn.Sequential:
    """A CNN with a TorchScript block inside (torch.jit.script on a submodule, as code written
    for deployment leaves it): torch takes no hooks on a ScriptModule."""
    torch.manual_seed(0)
    block = torch.jit.script(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()))
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), block, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(8, 10),
    )  # fmt: skip


def test_a_model_with_a_torchscript_block_trains_and_is_explained_around_it():
    from cnnlab import diagnose
    from cnnlab.errors import ExplainError
    from cnnlab.train import TrainConfig, train

    model = scripted_child().eval()
    x = torch.randn(4, 1, 8, 8)
    assert model(x).shape == (4, 10)  # plain torch runs it
    with pytest.raises(RuntimeError, match="not supported on ScriptModules"):
        model[2].register_forward_hook(lambda *a: None)  # torch's own refusal
    # was refused: "register_forward_pre_hook is not supported on ScriptModules (in Sequential.."
    quick = TrainConfig(epochs=1, batch_size=128, flip=False, tta=False, precision="fp32")
    assert 0 <= train(model, "digits", None, quick)["val_acc"] <= 1
    model.eval()
    with torch.no_grad():
        t = model(x).argmax(1)
    # Grad-CAM's default: the last layer it can hook with a map, the ReLU before the block
    torch.testing.assert_close(explain.gradcam(model, x), captum_gradcam(model, model[1], x, t))
    (layer,) = diagnose.dead_units(model, x).layers
    assert (layer.name, layer.channels) == ("1", 8)
    with pytest.raises(ExplainError, match=r"'2' is a TorchScript module.*hooks"):
        explain.gradcam(model, x, layer="2")


def test_gradient_flow_of_a_model_with_a_torchscript_block_equals_autograds():
    from cnnlab import diagnose

    model = scripted_child().eval()
    x, y = torch.randn(6, 1, 8, 8), torch.arange(6) % 10
    # was AttributeError: 'OrderedDictWrapper' object has no attribute 'get'
    flow = diagnose.gradient_flow(model, [(x, y)])
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()  # plain autograd, eval mode
    truth = {
        name: m.weight.grad.norm().item()
        for name, m in model.named_modules()
        if dict(m.named_parameters(recurse=False)).get("weight") is not None
    }
    assert "2.0" in truth  # the conv inside the TorchScript block
    assert {layer.name: layer.l2 for layer in flow.layers} == pytest.approx(truth, rel=1e-5)


def test_gradient_flow_of_a_model_scripted_whole_equals_autograds():
    from cnnlab import diagnose

    torch.manual_seed(0)
    plain = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10)
    )
    model = torch.jit.script(plain)
    x, y = torch.randn(6, 1, 8, 8), torch.arange(6) % 10
    flow = diagnose.gradient_flow(model, [(x, y)])  # was no layer at all
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()  # plain autograd
    truth = [plain[0].weight.grad.norm().item(), plain[3].weight.grad.norm().item()]
    assert [layer.name for layer in flow.layers] == ["0", "3"]  # the layers with a weight
    assert [layer.l2 for layer in flow.layers] == pytest.approx(truth, rel=1e-5)


SCRIPTED_FILE = """
import torch
from torch import nn


def make_net():
    block = torch.jit.script(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()))
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), block,
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
"""


def test_the_report_evaluates_a_run_with_a_torchscript_block_without_warnings(tmp_path):
    import warnings

    from cnnlab.cli import main
    from cnnlab.report.sources import Budget, Sources
    from cnnlab.train.rundir import load_run

    nets = tmp_path / "scripted.py"
    nets.write_text(SCRIPTED_FILE)
    out = tmp_path / "run"
    quick = ["--epochs", "1", "--no-flip", "--no-tta", "--precision", "fp32", "--quiet"]
    assert main(["train", "--model", f"{nets}:make_net", "--data", "digits", "--out", str(out),
                 *quick]) == 0  # fmt: skip
    run = load_run(out)
    assert run.config["channels_last"]  # the report evaluates a channels-last copy
    src = Sources(out, run, None, Budget())
    with warnings.catch_warnings():
        # torch's "The .grad attribute of a Tensor that is not a leaf Tensor is being
        # accessed" was printed: a deep copy of a TorchScript block holds non-leaf clones
        warnings.filterwarnings("error", message=".*not a leaf Tensor.*")
        evaluation, probs = src.evaluation
    _, x, y = src.test
    with torch.no_grad():  # the run's own model, in its own layout
        torch.testing.assert_close(probs, run.model(x).softmax(1), atol=1e-5, rtol=1e-4)


def dead_inside_script() -> nn.Sequential:
    """A CNN whose TorchScript block holds a ReLU dead for every input: its conv's bias is
    -100 and its weights are 0, so the ReLU's input is -100 everywhere."""
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 8, 3, padding=1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.fill_(-100.0)
    block = torch.jit.script(nn.Sequential(conv, nn.ReLU()))
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), block, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(8, 10),
    ).eval()  # fmt: skip


def test_activations_inside_a_torchscript_block_are_said_not_seen(monkeypatch, capsys):
    import sys
    import types

    from cnnlab import diagnose
    from cnnlab.cli import main
    from cnnlab.report.show import show_dead

    model, x = dead_inside_script(), torch.randn(6, 1, 8, 8)
    with torch.no_grad():  # the truth, without hooks: the block's ReLU never fires
        assert not model[2](model[1](model[0](x))).any()
    dead, acts = diagnose.dead_units(model, x), diagnose.activation_stats(model, x)
    # was: one layer "1" and nothing else, read as "no dead units"
    assert [layer.name for layer in dead.layers] == ["1"] and dead.hidden == ("2",)
    assert acts.hidden == ("2",) and dead.to_dict()["hidden"] == ["2"]
    line = "not looked into: 2 (TorchScript runs its calls where no hook sees them)"
    assert line in str(dead) and line in str(acts)
    whole = torch.jit.script(nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten()))
    assert diagnose.dead_units(whole, x).hidden == ("",)  # its inner modules are not listed
    plain = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten())
    assert diagnose.dead_units(plain, x).hidden == diagnose.activation_stats(plain, x).hidden == ()

    health = types.SimpleNamespace(result=dead, labels=("1",), findings=())
    assert {"kind": "text", "text": line} in show_dead(health, None)  # the report's line

    data = types.SimpleNamespace(
        images=torch.randint(0, 256, (6, 1, 8, 8)), labels=torch.zeros(6, dtype=torch.long)
    )
    run = types.SimpleNamespace(
        model=model, input_shape=(1, 8, 8), dataset=lambda split="test", progress=None: data,
        preprocess=lambda im: im.float() / 255,
    )  # fmt: skip
    fake = types.ModuleType("cnnlab.train.rundir")
    fake.load_run = lambda path: run
    monkeypatch.setitem(sys.modules, "cnnlab.train.rundir", fake)
    assert main(["diagnose", "somewhere"]) == 0
    said = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert line in said and "No problems found." not in said  # only what was seen is vouched
    assert "problems found in the layers looked into" in said or "try:" in said
