"""The presets in cnnlab/presets/*.yaml: each builds, runs, round-trips, and has the known size.

Truth: parameter counts from the papers / Fashion-MNIST's benchmark table and the notes'
formula Params = (K·K·C_in + 1)·F (§1); shapes from running the model.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.design.build import Residual, build
from cnnlab.design.spec import load_spec, preset_names, shapes

PRESETS = ["allconv-gap", "fast", "fmnist-tf", "lenet5", "mlp", "resnet-small", "vgg-small"]


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_named_preset_ships():
    assert set(PRESETS) <= set(preset_names())


@pytest.mark.parametrize("name", preset_names())
def test_preset_builds_runs_and_round_trips(name):
    model = build(name).eval()
    spec = model.spec
    assert spec.name == name and spec.description
    x = torch.randn(2, *spec.input)
    with torch.no_grad():
        for i, child in enumerate(model):
            x = child(x)
            assert tuple(x.shape[1:]) == shapes(spec)[i], f"{name} layer {i}"
    assert x.shape == (2, 10)  # ten Fashion-MNIST classes, logits
    assert load_spec(spec.to_yaml()) == spec


def test_fmnist_tf_has_3274634_parameters():
    """Fashion-MNIST benchmark table's TF-tutorial CNN, by the notes' formula (§1):
    (5·5·1 + 1)·32 + (5·5·32 + 1)·64 + (7·7·64 + 1)·1024 + (1024 + 1)·10."""
    by_formula = 26 * 32 + 801 * 64 + 3137 * 1024 + 1025 * 10
    assert by_formula == 3_274_634
    assert _n_params(build("fmnist-tf")) == by_formula
    assert shapes("fmnist-tf")[6] == (3136,)  # 64 maps of 7×7 flattened


def test_lenet5_shapes_and_61706_parameters():
    """LeNet-5 with full C3: 156 + 2,416 + 48,120 + 10,164 + 850 = 61,706 (LeCun et al. 1998)."""
    assert _n_params(build("lenet5")) == 61_706
    s = shapes("lenet5")
    assert [s[0], s[2], s[3], s[5], s[6]] == [
        (6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (120, 1, 1)
    ]  # fmt: skip
    # the classic 32×32 input without padding gives the same maps from C1 on
    classic = load_spec("lenet5").to_dict()
    classic["input"] = [1, 32, 32]
    classic["layers"][0] = {"conv": {"filters": 6, "kernel": 5}}
    assert shapes(classic) == s


def test_mlp_is_784_256_128_10():
    assert _n_params(build("mlp")) == (784 + 1) * 256 + (256 + 1) * 128 + (128 + 1) * 10


def test_resnet_small_has_projection_shortcuts_where_the_shape_changes():
    blocks = [m for m in build("resnet-small") if isinstance(m, Residual)]
    assert [b.shortcut is None for b in blocks] == [True, False, True, False]
    assert shapes("resnet-small")[-2:] == [(128,), (10,)]


def test_allconv_gap_has_no_pooling_and_no_dense_layer():
    kinds = {layer.kind for layer in load_spec("allconv-gap").layers}
    assert kinds.isdisjoint({"maxpool", "avgpool", "linear", "flatten"}) and "gap" in kinds


def test_fast_is_small_and_cheap():
    """≤ 300k parameters and ≤ 40M multiply-adds per 28×28 image (counted on the real run)."""
    model = build("fast").eval()
    macs = []

    def count(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            macs.append(output[0].numel() * module.weight[0].numel())
        elif isinstance(module, nn.Linear):
            macs.append(module.weight.numel())

    hooks = [m.register_forward_hook(count) for m in model.modules()]
    with torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))
    for h in hooks:
        h.remove()
    assert _n_params(model) <= 300_000
    assert sum(macs) <= 40_000_000
    assert shapes("fast")[13] == (64, 7, 7)  # pooled to 7×7 before the last stage
