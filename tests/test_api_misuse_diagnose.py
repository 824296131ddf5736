"""diagnose's functions given what a practitioner naturally gives them by mistake: one error
naming the fix, or the right result, checked against torch's autograd."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab import diagnose
from cnnlab.errors import DataError, ExplainError

pytestmark = pytest.mark.usefixtures("one_thread")


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3)
    ).eval()  # fmt: skip


def data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(6, 1, 8, 8, generator=gen), torch.arange(6) % 3


def test_a_loss_class_given_for_its_instance_is_told_to_call_it():
    # nn.CrossEntropyLoss(logits, labels) built a loss with the logits as class weights; its
    # error was told 'labels must be class indices 0..2', labels that were right
    model, (x, y) = net(), data()
    with pytest.raises(ExplainError, match=r"loss_fn=CrossEntropyLoss is a class; .*\(\)"):
        diagnose.gradient_flow(model, [(x, y)], loss_fn=nn.CrossEntropyLoss, train=False)
    flow = diagnose.gradient_flow(model, [(x, y)], loss_fn=nn.CrossEntropyLoss(), train=False)
    weights = [model[0].weight, model[3].weight]
    truth = torch.autograd.grad(F.cross_entropy(model(x), y), weights)
    got = [layer.l2 for layer in flow.layers]
    assert got == pytest.approx([g.norm().item() for g in truth], rel=1e-5)


def test_a_loss_of_other_targets_is_not_blamed_on_the_class_indices():
    model, (x, y) = net(), data()
    with pytest.raises(DataError, match="loss_fn is given the model's .* labels as they are"):
        diagnose.gradient_flow(model, [(x, y)], loss_fn=nn.MSELoss())


@pytest.mark.parametrize("activation", [None, nn.Tanh()])
def test_dead_units_of_a_model_without_rectifiers_say_so(activation):
    # the header alone, 'dead units on 6 inputs (flag: dead share > 10%)', read as none dead
    layers = [nn.Conv2d(1, 4, 3), *([activation] if activation else []), nn.Flatten()]
    model = nn.Sequential(*layers, nn.Linear(4 * 36, 3)).eval()
    dead = diagnose.dead_units(model, data()[0])
    assert dead.layers == () and "computes no ReLU-family activation" in str(dead)
    assert dead.others == (("1 (tanh)",) if activation else ())


def test_labels_as_a_list_and_images_as_a_list_of_tensors_are_one_pair():
    # the pair was read as two batches: AttributeError: 'list' object has no attribute 'to'
    model, (x, y) = net(), data()
    meant = diagnose.gradient_flow(model, (x, y), train=False).to_dict()
    assert diagnose.gradient_flow(model, (x, y.tolist()), train=False).to_dict() == meant
    assert diagnose.gradient_flow(model, [(list(x), y)], train=False).to_dict() == meant


def test_a_dict_batch_is_told_its_keys():
    model, (x, y) = net(), data()
    with pytest.raises(ExplainError, match=r"got dict \(keys 'image', 'label'\); give .* pairs"):
        diagnose.gradient_flow(model, [{"image": x, "label": y}])


@pytest.mark.parametrize("labels", ["list", "one-hot"])
def test_the_progress_of_a_pair_counts_its_batches(labels):
    # a pair with list or one-hot labels was counted as a sized iterable of 2 batches
    model, (x, y) = net(), data()
    y = y.tolist() if labels == "list" else nn.functional.one_hot(y, 3).float()
    calls = []
    diagnose.dead_units(model, (x, y), batch_size=2, progress=lambda *c: calls.append(c[:2]))
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)]  # 6 images, 2 a batch


def test_labels_as_a_list_of_another_count_are_told_as_a_tensor_of_it_is():
    # a list of 3 labels for 6 images stayed a list: AttributeError: 'list' object has no
    # attribute 'to', where the same labels as a tensor are told their count
    from cnnlab.inspect import batches

    model, (x, y) = net(), data()
    for labels in (y[:3], y[:3].tolist()):
        with pytest.raises(DataError, match=r"logits \(6, 3\) and labels \(3,\)"):
            diagnose.gradient_flow(model, (x, labels), train=False)
        with pytest.raises(DataError, match="6 images but 3 labels; give one label per image"):
            list(batches((x, labels), 4))
