"""Models brought to cnnlab written as PyTorch allows but cnnlab's own specs never build: a
buffer registered in the first forward, weights made by torch.nn.utils.parametrizations
(weight_norm, spectral_norm) or by torch's older weight_norm/spectral_norm hooks. Truth:
torch's own forward, state_dict and autograd. (What cnnlab says of models it cannot take:
test_user_models_messages.py.)"""

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
from cnnlab.explain import ExplainError
from cnnlab.explorer import create_app
from cnnlab.inspect import (
    is_leaf,
    layer_names,
    resolve_layer,
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


def normed_net(weight_norm=P.weight_norm, spectral_norm=P.spectral_norm) -> nn.Module:
    """weight_norm on the stem, spectral_norm on the second conv (BatchNorm and ReLU after
    it), both as torch.nn.utils.parametrizations makes them: ParametrizedConv2d layers whose
    weight is computed by child modules when it is read (or as the norms given make them)."""
    torch.manual_seed(0)
    return nn.Sequential(
        weight_norm(nn.Conv2d(1, 4, 3, padding=1)),
        nn.ReLU(),
        spectral_norm(nn.Conv2d(4, 6, 3, padding=1)),
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


@pytest.mark.parametrize("train", [False, True])
def test_gradient_flow_leaves_a_train_mode_spectral_norm_as_it_was(train):
    """A spectral_norm layer in train mode runs a power iteration at every read of its
    weight (its _u, _v buffers move): gradient flow on a model just trained must not."""
    model = normed_net().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.rand(8, 1, 8, 8), torch.randint(0, 3, (8,))
    gradient_flow(model, (x, y), train=train)
    after = model.state_dict()
    assert model.training and all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("name", sorted(WEIGHT_CODE))
def test_the_code_of_a_weight_is_refused_as_a_layer_naming_its_layer(name):
    """`--layer 0.parametrizations.weight.0` would show the stem's weight as maps."""
    with pytest.raises(ExplainError, match=f"name the layer itself: '{name[0]}'"):
        resolve_layer(normed_net(), name)
    assert resolve_layer(normed_net(), name[0]) is not None


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


def hook_normed_net() -> nn.Module:
    """normed_net's layers through torch's older API (torch.nn.utils.weight_norm and
    spectral_norm, still in much published code): forward pre-hooks set each conv's `weight`
    anew at every call from weight_g/weight_v or weight_orig."""
    with warnings.catch_warnings():  # the older API is deprecated, and still in use
        warnings.simplefilter("ignore")
        return normed_net(torch.nn.utils.weight_norm, torch.nn.utils.spectral_norm)


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
