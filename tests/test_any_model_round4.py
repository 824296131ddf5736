"""Models brought to cnnlab written as PyTorch allows but cnnlab's own specs never build: a
buffer registered in the first forward, weights made by torch.nn.utils.parametrizations
(weight_norm, spectral_norm). Truth: torch's own forward, state_dict and autograd."""

from __future__ import annotations

import copy
import io
import json
import textwrap
import warnings

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils import parametrizations as P

import cnnlab
from cnnlab.cli import main
from cnnlab.diagnose import gradient_flow
from cnnlab.errors import SpecError
from cnnlab.explorer import create_app
from cnnlab.inspect import (
    classifier_misfit,
    is_leaf,
    layer_names,
    spatial_layers,
    trace,
    weight_code,
)
from cnnlab.train import import_run, load_run
from cnnlab.train.rundir import Run
from cnnlab.train.source import parse_model_ref

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

QUICK = ["--epochs", "1", "--batch-size", "128", "--no-flip", "--no-tta", "--precision", "fp32"]

COUNTER = textwrap.dedent(
    """
    import torch
    from torch import nn
    import torch.nn.functional as F

    class Counter(nn.Module):
        '''Counts its forwards in a buffer registered at the first one.'''

        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(1, 4, 3, padding=1)
            self.fc = nn.Linear(4, 10)

        def forward(self, x):
            if not hasattr(self, "calls"):
                self.register_buffer("calls", torch.zeros(()))
            self.calls += 1
            return self.fc(F.relu(self.stem(x)).mean((2, 3)))

    def make_net():
        return Counter()
    """
)


def test_a_buffer_registered_in_forward_opens_with_its_saved_value(tmp_path, capsys):
    """Training saved `calls` with the weights; a fresh instance has no `calls` until its
    first forward, so every command refused the run ('not in the model: calls')."""
    code = tmp_path / "counter.py"
    code.write_text(COUNTER)
    out = tmp_path / "run"
    argv = ["train", "--model", f"{code}:make_net", "--data", "digits", "--out", str(out)]
    assert main([*argv, "--quiet", *QUICK]) == 0
    capsys.readouterr()
    assert main(["eval", str(out), "--json"]) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["n"] > 0
    saved = load_file(out / "model.safetensors")
    run = load_run(out)
    assert torch.equal(run.model.stem.weight, saved["stem.weight"])
    # the weights loaded after the extra forward: the count goes on from the saved one
    assert run.model.calls >= saved["calls"] > 0


def test_import_takes_a_buffer_registered_in_forward(tmp_path):
    code = tmp_path / "counter.py"
    code.write_text(COUNTER)
    source = parse_model_ref(f"{code}:make_net", [])
    model = source.build()
    model(torch.zeros(2, 1, 8, 8))
    model.calls.fill_(41)
    save_file(model.state_dict(), tmp_path / "w.safetensors")
    import_run(source, tmp_path / "w.safetensors", tmp_path / "run", "digits")
    assert load_file(tmp_path / "run" / "model.safetensors")["calls"] >= 41  # + its checks
    assert torch.equal(load_run(tmp_path / "run").model.fc.weight, model.fc.weight)


def normed_net() -> nn.Module:
    """weight_norm on the stem, spectral_norm on the second conv (BatchNorm and ReLU after
    it), both as torch.nn.utils.parametrizations makes them: ParametrizedConv2d layers whose
    weight is computed by child modules when it is read."""
    torch.manual_seed(0)
    return nn.Sequential(
        P.weight_norm(nn.Conv2d(1, 4, 3, padding=1)),
        nn.ReLU(),
        P.spectral_norm(nn.Conv2d(4, 6, 3, padding=1)),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 3),
    ).eval()


WEIGHT_CODE = {
    "0.parametrizations", "0.parametrizations.weight", "0.parametrizations.weight.0",
    "2.parametrizations", "2.parametrizations.weight", "2.parametrizations.weight.0",
}  # fmt: skip


def test_layers_of_a_parametrized_model_are_its_layers_not_its_weight_code():
    """The modules computing weight_norm's and spectral_norm's weights ran as layers: the
    spatial layers held `0.parametrizations.weight.0` ((4, 1, 3, 3), the stem's weight, read
    as a batch of maps), so visualize --maps and the explorer's feature panel showed weights."""
    model, x = normed_net(), torch.rand(2, 1, 8, 8)
    assert WEIGHT_CODE <= set(dict(model.named_modules()))  # what torch adds
    assert weight_code(model) == WEIGHT_CODE
    assert layer_names(model) == [str(i) for i in range(8)]
    assert [name for name, _ in trace(model, x)] == [str(i) for i in range(8)]
    assert spatial_layers(model, x) == ["0", "1", "2", "3", "4"]
    assert is_leaf(model[0]) and is_leaf(model[1]) and not is_leaf(model)


def test_the_explorer_traces_the_dot_product_of_a_parametrized_conv(tmp_path):
    """A ParametrizedConv2d has child modules, so it was no leaf and no conv chain: /api/trace
    said "'0' is not a convolution of this model; convolutions: (none)". Its dot product is
    the computed weight's, equal to the layer's output."""
    model = normed_net()
    config = {"data": None, "classes": ["a", "b", "c"], "mean": [0.5], "std": [0.25]}
    run = Run(tmp_path, None, model, {**config, "input_shape": [1, 8, 8]})
    client = TestClient(create_app(run))
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8), "u1")
    Image.fromarray(pixels).save(buffer, "PNG")
    sent = client.post("/api/predict", files={"image": ("n.png", buffer.getvalue(), "image/png")})
    assert sent.status_code == 200, sent.text
    info = client.get("/api/model").json()
    assert set(info["maps"]) == {"0", "1", "2", "3", "4", "5"}  # 1×1 included
    assert list(info["spatial"]) == ["0", "1", "2", "3", "4"]
    chains = [(c["conv"], c["bn"], c["act"]) for c in info["convs"]]
    assert chains == [("0", None, "1"), ("2", "3", "4")]
    x = run.preprocess(torch.from_numpy(pixels)[None, None])
    with torch.no_grad():
        truth = {"0": model[0](x)[0], "2": model[2](model[1](model[0](x)))[0]}
    for conv, out in truth.items():
        query = f"layer={conv}&channel=1&row=3&col=5"
        t = client.get(f"/api/trace?image={sent.json()['image']}&{query}").json()
        assert t["output"] == pytest.approx(float(out[1, 3, 5]), abs=1e-5), t


def plain_twin(model: nn.Module) -> nn.Module:
    """The same function with plain Conv2d layers holding the weights the parametrizations
    compute (eval mode: spectral_norm's stored vectors, no power iteration)."""
    twin = copy.deepcopy(model)
    for i in (0, 2):
        conv = nn.Conv2d(twin[i].in_channels, twin[i].out_channels, 3, padding=1)
        with torch.no_grad():
            conv.weight.copy_(model[i].weight)
            conv.bias.copy_(model[i].bias)
        twin[i] = conv
    return twin


def test_gradient_flow_reaches_weight_and_spectral_normed_layers():
    """Their weight is no parameter of theirs (it is computed from `original0/1`): gradient
    flow listed only BatchNorm and the Linear, as if the convs had no weight. Truth: the plain
    twin's weight gradients, layer by layer."""
    model, batch = normed_net(), (torch.rand(16, 1, 8, 8), torch.arange(16) % 3)
    flow = gradient_flow(model, batch, train=False)
    truth = gradient_flow(plain_twin(model), batch, train=False)
    assert [l.name for l in flow.layers] == [l.name for l in truth.layers] == ["0", "2", "3", "7"]
    for got, want in zip(flow.layers, truth.layers, strict=True):
        assert got.l2 == pytest.approx(want.l2, rel=1e-4) and got.reached
    assert flow.ratio == pytest.approx(truth.ratio, rel=1e-4)
    frozen = normed_net().requires_grad_(False)
    before = {n: p.clone() for n, p in frozen.state_dict().items()}
    assert [l.name for l in gradient_flow(frozen, batch).layers] == ["0", "2", "3", "7"]
    assert not any(p.requires_grad for p in frozen.parameters())  # left as it was
    assert all(torch.equal(before[n], t) for n, t in frozen.state_dict().items())


def test_summary_rows_of_parametrized_layers_are_the_layers_with_all_their_parameters():
    """The summary had rows for `0.parametrizations.weight.0` (_WeightNorm, output '1×3×3',
    RF '?') and gave the stem 4 parameters (its bias) of 44: its weight's `original0/1` belong
    to the parametrization, not to a row. Truth: the plain twin's rows, and each layer's
    parameters as torch counts them (recursively)."""
    model = normed_net()
    got, want = cnnlab.summary(model, (1, 8, 8)), cnnlab.summary(plain_twin(model), (1, 8, 8))
    assert [r.name for r in got.rows] == [r.name for r in want.rows] == [str(i) for i in range(8)]
    for row, twin in zip(got.rows, want.rows, strict=True):
        layer = model[int(row.name)]
        assert row.params == sum(p.numel() for p in layer.parameters()), row.name
        assert (row.output_shape, row.macs, row.receptive_field, row.jump) == (
            twin.output_shape, twin.macs, twin.receptive_field, twin.jump,
        )  # fmt: skip
    assert got.total_params == sum(p.numel() for p in model.parameters()) == 44 + 222 + 12 + 21
    assert sum(r.params for r in got.rows) == got.total_params
    assert [w.code for w in got.warnings] == [w.code for w in want.warnings]


MLP = textwrap.dedent(
    """
    from torch import nn

    def make_net(hidden=16):
        return nn.Sequential(
            nn.Flatten(), nn.Linear(64, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Linear(hidden, 10),
        )
    """
)


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    """An MLP (no conv, no map) imported with random weights on digits, and an 8×8 image."""
    tmp = tmp_path_factory.mktemp("mlp")
    (tmp / "mlp.py").write_text(MLP)
    source = parse_model_ref(f"{tmp / 'mlp.py'}:make_net", [])
    torch.manual_seed(0)
    save_file(source.build().state_dict(), tmp / "w.safetensors")
    import_run(source, tmp / "w.safetensors", tmp / "run", "digits")
    Image.new("L", (8, 8), 30).save(tmp / "x.png")
    return tmp


def test_explain_of_a_model_without_maps_says_which_methods_work(mlp_run, capsys):
    """Grad-CAM, the default, said only 'the model has no layer with a spatial (B, C, H, W)
    output, H·W > 1', leaving the user to guess that saliency needs no map."""
    argv = ["explain", str(mlp_run / "run"), str(mlp_run / "x.png"), "--out", str(mlp_run)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--method saliency or smoothgrad" in err
    assert main([*argv, "--method", "saliency"]) == 0


NAN = textwrap.dedent(
    """
    from torch import nn

    class Nan(nn.Module):
        '''Its forward makes NaN at any weights: 0 · inf.'''

        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

        def forward(self, x):
            return self.net(x) * float("inf") * 0

    def make_net():
        return Nan()
    """
)


def test_a_loss_not_finite_before_any_update_blames_the_model_not_the_rate(tmp_path, capsys):
    """The first batch's loss is the factory's weights' own: training said 'the learning
    rate is probably too high; start again with --lr ...', which cannot help."""
    (tmp_path / "nan.py").write_text(NAN)
    argv = ["train", "--model", f"{tmp_path / 'nan.py'}:make_net", "--data", "digits"]
    assert main([*argv, "--out", str(tmp_path / "run"), "--quiet", *QUICK]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "learning rate is probably" not in err
    assert "nan on the first batch" in err and "before any update" in err


class QueryHead(nn.Module):
    """Attention pooling with one learned query: (B, 1, C) out of the tokens, then the
    classifier on it, leaving (B, 1, K)."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.query = nn.Parameter(torch.randn(1, 1, 8))
        self.attend = nn.MultiheadAttention(8, 2, batch_first=True)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        tokens = self.stem(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        pooled, _ = self.attend(self.query.expand(len(x), -1, -1), tokens, tokens)
        return self.fc(pooled)


def test_class_scores_behind_a_singleton_dim_are_told_to_be_flattened():
    """(B, 1, K) was told 'outputs (1, 10) per image but the data has 10 classes; give it
    10 outputs': it has them. torch's loss refuses it as it is and takes it flattened."""
    model = QueryHead().eval()
    out = model(torch.zeros(4, 1, 8, 8))
    assert out.shape == (4, 1, 10)
    with pytest.raises((RuntimeError, ValueError)):
        torch.nn.functional.cross_entropy(out, torch.zeros(4, dtype=torch.long))
    torch.nn.functional.cross_entropy(out.flatten(1), torch.zeros(4, dtype=torch.long))
    misfit = classifier_misfit(model, (1, 8, 8), 10)
    assert misfit.kind == "output" and "(1, 10) per image" in misfit.why
    assert "x.flatten(1)" in misfit.why and "give it" not in misfit.why
    assert classifier_misfit(nn.Sequential(model, nn.Flatten()), (1, 8, 8), 10) is None


RGB = textwrap.dedent(
    """
    from torch import nn

    def make_net():
        return nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(4, 10),
        )
    """
)


def test_import_of_code_for_other_images_says_to_give_input_and_that_way_works(tmp_path, capsys):
    """train said 'if it takes other images, give --input C,H,W'; import, whose --input
    converts the data the same way, named only torch's channel error."""
    (tmp_path / "rgb.py").write_text(RGB)
    source = parse_model_ref(f"{tmp_path / 'rgb.py'}:make_net", [])
    save_file(source.build().state_dict(), tmp_path / "w.safetensors")
    argv = ["import", "--model", source.reference, "--weights", str(tmp_path / "w.safetensors")]
    assert main([*argv, "--data", "digits", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "expected input" in err
    assert err.endswith("give --input C,H,W (the data is converted)")
    assert main([*argv, "--data", "digits", "--out", str(tmp_path / "b"), "--input", "3,8,8"]) == 0


FROZEN = textwrap.dedent(
    """
    from torch import nn

    def net():
        return nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(4, 10),
        )

    def frozen():
        return net().requires_grad_(False)

    def head_only():
        model = net()
        model[0].requires_grad_(False)
        return model
    """
)


def test_a_model_frozen_whole_is_told_there_is_nothing_to_train(tmp_path, capsys):
    """It raised torch's 'element 0 of tensors does not require grad' as a traceback at the
    first backward, leaving a run directory behind. A model frozen in part trains its rest."""
    (tmp_path / "frz.py").write_text(FROZEN)
    argv = ["train", "--data", "digits", "--quiet", *QUICK]
    out = tmp_path / "frozen"
    assert main([*argv, "--model", f"{tmp_path / 'frz.py'}:frozen", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nothing to train" in err and "requires_grad" in err
    assert not out.exists()
    out = tmp_path / "head"
    assert main([*argv, "--model", f"{tmp_path / 'frz.py'}:head_only", "--out", str(out)]) == 0
    torch.manual_seed(0)  # train seeds the factory with the run's seed, 0 by default
    start = parse_model_ref(f"{tmp_path / 'frz.py'}:head_only", []).build()
    trained = load_run(out).model
    assert torch.equal(trained[0].weight, start[0].weight)  # frozen: as built
    assert not torch.equal(trained[4].weight, start[4].weight)  # trained


DEVICES = textwrap.dedent(
    """
    import torch
    from torch import nn

    def net():
        return nn.Sequential(
            nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10)
        )

    def meta():
        with torch.device("meta"):  # fast to build, no values
            return net()

    def half():
        return net().half()
    """
)


@pytest.mark.parametrize(
    ("factory", "words"),
    [("meta", "on the meta device (0.weight"), ("half", "its parameters are float16 (0.weight)")],
)
def test_parameters_without_values_or_of_another_dtype_need_no_other_input(
    tmp_path, capsys, factory, words
):
    """A model built under torch.device('meta') was told torch's 'Tensor on device meta is
    not on the expected device cpu! ...; if it takes other images, give --input C,H,W'; a
    float16 one was told to give --input too. Neither is about the images."""
    (tmp_path / "dev.py").write_text(DEVICES)
    ref = f"{tmp_path / 'dev.py'}:{factory}"
    argv = ["train", "--model", ref, "--data", "digits", "--out", str(tmp_path / "run")]
    assert main([*argv, "--quiet", *QUICK]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err and "--input" not in err
    model = parse_model_ref(ref, []).build()
    assert classifier_misfit(model, (1, 8, 8), 10).kind == "weights"
    if factory == "meta":  # the fix the message gives
        model.to_empty(device="cpu")
        for layer in (model[0], model[3]):
            layer.reset_parameters()
        assert classifier_misfit(model, (1, 8, 8), 10) is None


NO_GRAPH = textwrap.dedent(
    """
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self, mode):
            super().__init__()
            self.mode = mode
            self.body = nn.Sequential(
                nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                nn.Linear(4, 10),
            )

        def forward(self, x):
            if self.mode == "no_grad":  # written for inference
                with torch.no_grad():
                    return self.body(x)
            if self.mode == "inference_mode":
                with torch.inference_mode():
                    return self.body(x)
            return self.body(x).detach()

    def make_net(mode):
        return Net(mode)
    """
)


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode", "detach"])
def test_a_forward_that_cuts_the_graph_is_told_before_a_run_directory_is_made(
    tmp_path, capsys, mode
):
    """It raised torch's 'element 0 of tensors does not require grad' as a traceback at the
    first backward and left config.json and metrics.jsonl behind."""
    (tmp_path / "ng.py").write_text(NO_GRAPH)
    out = tmp_path / "run"
    argv = ["train", "--model", f"{tmp_path / 'ng.py'}:make_net", "--model-arg", f"mode={mode!r}"]
    assert main([*argv, "--data", "digits", "--out", str(out), "--quiet", *QUICK]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "carry no gradient" in err and not out.exists()


GPU = textwrap.dedent(
    """
    from torch import nn

    def make_net():
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).cuda()  # research code's habit

    def broken():
        raise ValueError("no such width")
    """
)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the factory runs where there is CUDA")
def test_a_factory_that_moves_the_model_to_a_gpu_is_told_to_return_it_on_the_cpu(tmp_path):
    """'gpu() raised AssertionError: Torch not compiled with CUDA enabled' named no fix."""
    (tmp_path / "gpu.py").write_text(GPU)
    with pytest.raises(SpecError) as raised:
        parse_model_ref(f"{tmp_path / 'gpu.py'}:make_net", []).build()
    assert "CUDA" in str(raised.value) and "return the model on the CPU" in str(raised.value)
    with pytest.raises(SpecError) as raised:
        parse_model_ref(f"{tmp_path / 'gpu.py'}:broken", []).build()
    assert str(raised.value).endswith("raised ValueError: no such width")


def hook_normed_net() -> nn.Module:
    """normed_net's layers through torch's older API (torch.nn.utils.weight_norm and
    spectral_norm, still in much published code): forward pre-hooks set each conv's `weight`
    anew at every call from weight_g/weight_v or weight_orig."""
    torch.manual_seed(0)
    with warnings.catch_warnings():  # the older API is deprecated, and still in use
        warnings.simplefilter("ignore")
        return nn.Sequential(
            torch.nn.utils.weight_norm(nn.Conv2d(1, 4, 3, padding=1)),
            nn.ReLU(),
            torch.nn.utils.spectral_norm(nn.Conv2d(4, 6, 3, padding=1)),
            nn.BatchNorm2d(6),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(6, 3),
        ).eval()


def test_gradient_flow_reaches_layers_normed_by_torchs_older_hooks():
    """Their `weight` is a plain tensor a pre-hook remakes at each call, no parameter: gradient
    flow left both convs out. Truth: the plain twin's weight gradients, layer by layer; the
    model's hooks and requires_grad flags are as they were after."""
    model, batch = hook_normed_net(), (torch.rand(16, 1, 8, 8), torch.arange(16) % 3)
    with torch.no_grad():  # the hooks set each weight (a copyable one) for these values
        before = model(batch[0])
    truth = gradient_flow(plain_twin(model), batch, train=False)
    flow = gradient_flow(model, batch, train=False)
    assert [l.name for l in flow.layers] == [l.name for l in truth.layers] == ["0", "2", "3", "7"]
    for got, want in zip(flow.layers, truth.layers, strict=True):
        assert got.l2 == pytest.approx(want.l2, rel=1e-4) and got.reached
    assert [len(m._forward_pre_hooks) for m in (model[0], model[2])] == [1, 1]
    with torch.no_grad():
        assert torch.equal(model(batch[0]), before)
    model.requires_grad_(False)
    assert [l.name for l in gradient_flow(model, batch).layers] == ["0", "2", "3", "7"]
    assert not any(p.requires_grad for p in model.parameters())
