"""One image given without its batch dim, (C, H, W), to the functions that also take flat
(B, F) inputs (diagnose's): one ExplainError saying to add the batch dim. A BatchNorm raised
torch's ValueError 'expected 4D input (got 3D input)', a model without one was told its
logits must be (B, K)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import diagnose, explain, inspect
from cnnlab.errors import DataError, ExplainError

pytestmark = pytest.mark.usefixtures("one_thread")


def net(norm: bool) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), *([nn.BatchNorm2d(8)] if norm else []), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    ).eval()  # fmt: skip


CALLS = {
    "dead_units": lambda m, x: diagnose.dead_units(m, x),
    "activation_stats": lambda m, x: diagnose.activation_stats(m, x),
    "gradient_flow": lambda m, x: diagnose.gradient_flow(m, [(x, torch.tensor([1]))]),
}


@pytest.mark.parametrize("norm", [True, False])
@pytest.mark.parametrize("call", CALLS)
def test_one_image_without_its_batch_dim_is_told_to_add_it(call, norm):
    model, x = net(norm), torch.randn(3, 6, 6)
    with pytest.raises(ExplainError, match=r"add its batch dim: x\.unsqueeze\(0\)"):
        CALLS[call](model, x)
    CALLS[call](model, x.unsqueeze(0))  # as told


def test_the_batched_image_gives_torchs_sparsity():
    model, x = net(True), torch.randn(3, 6, 6)
    relu = diagnose.dead_units(model, x.unsqueeze(0)).layers[0]
    with torch.no_grad():
        expected = (model[:3](x.unsqueeze(0)) <= 0).float().mean().item()
    assert relu.sparsity == pytest.approx(expected)


@pytest.mark.parametrize("call", [inspect.trace, inspect.channel_dims])
def test_uint8_images_are_told_to_be_normalised_not_cast(call):
    # they were told 'give the images as x.to(torch.float32)': pixel values 0..255
    x = torch.randint(0, 256, (2, 3, 6, 6), dtype=torch.uint8)
    with pytest.raises(ExplainError, match="images must be floating point, got torch.uint8"):
        call(net(True), x)


PAIR_CALLS = {
    "linear_probe": lambda m, d: explain.linear_probe(m, d, d, epochs=1),
    "dead_units": lambda m, d: diagnose.dead_units(m, d),
    "activation_stats": lambda m, d: diagnose.activation_stats(m, d),
}


@pytest.mark.parametrize("call", PAIR_CALLS)
def test_images_and_labels_of_two_lengths_are_told_so(call):
    # the pair was read as two batches, images then labels: 'linear probes need labels'
    data = (torch.randn(4, 3, 6, 6), torch.tensor([0, 1, 0]))
    with pytest.raises(DataError, match="data: 4 images but 3 labels; give one label per image"):
        PAIR_CALLS[call](net(True), data)


def test_a_probe_of_one_layer_named_as_a_string_probes_that_layer():
    # 'unknown layer 'f'': the name's letters were read as layer names
    x, y, model = torch.randn(8, 3, 6, 6), torch.arange(8) % 2, nn.Sequential(net(True))
    one = explain.linear_probe(model, (x, y), (x, y), layers="0.2", epochs=2)
    assert one == explain.linear_probe(model, (x, y), (x, y), layers=["0.2"], epochs=2)
    assert list(one) == ["input", "0.2"]


def test_a_probe_on_one_training_image_is_told_it_needs_two():
    # one image has no spread to standardise by: L-BFGS met NaN features and raised torch's
    # 'value cannot be converted to type float without overflow'
    x, y, model = torch.randn(4, 3, 6, 6), torch.tensor([0, 1, 2, 3]), net(False)
    with pytest.raises(ExplainError, match="at least 2 training images, got 1"):
        explain.linear_probe(model, (x[:1], y[:1]), (x, y), epochs=2)
    two = explain.linear_probe(model, (x[:2], y[:2]), (x, y), epochs=2)
    assert all(0.0 <= acc <= 1.0 for acc in two.values())


@pytest.mark.parametrize("target", ["cat", [[1], [2, 3]]])
def test_a_target_that_is_no_class_index_is_one_error(target):
    # torch.as_tensor raised 'new(): invalid data type 'str'' / a ragged-list ValueError
    with pytest.raises(ExplainError, match="target must be class indices"):
        explain.saliency(net(True), torch.randn(2, 3, 6, 6), target=target)


LAYER_CALLS = {
    "gradcam": lambda m, layer: explain.gradcam(m, torch.randn(2, 3, 6, 6), layer=layer),
    "feature_maps": lambda m, layer: explain.feature_maps(m, torch.randn(2, 3, 6, 6), [layer]),
    "activation_maximization": lambda m, layer: explain.activation_maximization(
        m, layer, [0], steps=1, input_size=(3, 6, 6)
    ),
}


@pytest.mark.parametrize("call", LAYER_CALLS)
def test_a_layer_given_as_its_module_is_told_its_name(call):
    # as Captum and pytorch-grad-cam take it: 'unknown layer ReLU(); valid layer names: ...'
    model = net(True)
    with pytest.raises(ExplainError, match="not given as modules: give '2' for that ReLU"):
        LAYER_CALLS[call](model, model[2])
    with pytest.raises(ExplainError, match="layer ReLU is not a module of the model"):
        LAYER_CALLS[call](model, nn.ReLU())
