"""Models whose forward returns the class scores in another shape than (B, K): the fully
convolutional nets of SqueezeNet and NiN end in a 1×1 conv with K filters and a global
pooling, leaving (B, K, 1, 1); and diagnosis of models whose output is not one logits tensor
(a dict, Inception's aux logits in train mode). Truths: torch's cross-entropy on the same
output, plain torch's forward hooks and autograd on the same model."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab import diagnose
from cnnlab.errors import ExplainError, SpecError
from cnnlab.inspect import classifier_misfit
from cnnlab.train import TrainConfig, train
from tiny_nets import outputs

QUICK = TrainConfig(epochs=1, batch_size=128, flip=False, tta=False, precision="fp32")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


def fully_convolutional(pool: bool = True) -> nn.Sequential:
    head = [nn.Conv2d(8, 10, 1), *([nn.AdaptiveAvgPool2d(1)] if pool else [])]
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), *head)


def test_class_scores_left_as_a_1x1_map_are_told_to_be_flattened():
    model = fully_convolutional()
    out = model(torch.zeros(4, 1, 8, 8))
    assert out.shape == (4, 10, 1, 1)
    with pytest.raises(RuntimeError):  # torch's own loss refuses them against (B,) labels
        F.cross_entropy(out, torch.zeros(4, dtype=torch.long))
    F.cross_entropy(out.flatten(1), torch.zeros(4, dtype=torch.long))  # flattened: accepted
    # was "outputs (10, 1, 1) per image but the data has 10 classes; give it 10 outputs"
    with pytest.raises(SpecError, match=r"\(10, 1, 1\) per image.*nn\.Flatten\(\)"):
        train(model, "digits", None, QUICK)
    result = train(nn.Sequential(fully_convolutional(), nn.Flatten()), "digits", None, QUICK)
    assert 0 <= result["val_acc"] <= 1  # the fix given works


def test_class_score_maps_are_told_to_be_pooled_and_flattened():
    model = fully_convolutional(pool=False)
    assert model(torch.zeros(1, 1, 8, 8)).shape == (1, 10, 8, 8)
    with pytest.raises(SpecError, match=r"\(10, 8, 8\) per image.*AdaptiveAvgPool2d\(1\)"):
        train(model, "digits", None, QUICK)
    fixed = nn.Sequential(model, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    assert 0 <= train(fixed, "digits", None, QUICK)["val_acc"] <= 1


class Squeezed(nn.Module):
    """The head as tutorials write it: `.squeeze()` after a global pooling, which drops the
    batch dim too when the batch holds one image."""

    def __init__(self):
        super().__init__()
        self.body = fully_convolutional()

    def forward(self, x):
        return self.body(x).squeeze()


def test_a_squeeze_that_drops_the_batch_of_one_image_is_refused_before_training():
    model = Squeezed().eval()
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)  # fine for batches...
    assert model(torch.zeros(1, 1, 8, 8)).shape == (10,)  # ...not for one image, as predict has
    # training went on, and predict/explain of one image failed with an IndexError traceback
    with pytest.raises(SpecError, match=r"\(10,\) for one image.*\.flatten\(1\)"):
        train(model, "digits", None, QUICK)
    assert not model.training  # the check leaves it as it was


def test_logits_flattened_across_the_batch_are_told_to_keep_the_batch_dim():
    model = nn.Sequential(nn.Conv2d(1, 10, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(0))
    assert model(torch.zeros(2, 1, 8, 8)).shape == (20,)  # the 2 images' scores in one row
    misfit = classifier_misfit(model, (1, 8, 8), 10)
    # was "outputs () per image", then "give it 10 outputs", which it had
    assert misfit.kind == "output" and "(20,) for 2 images, no batch dim" in misfit.why
    with pytest.raises(SpecError, match=r"no batch dim.*\.flatten\(1\)") as info:
        train(model, "digits", None, QUICK)
    assert "10 classes" not in str(info.value)


@pytest.mark.parametrize("end", [nn.Flatten(0), nn.Identity()])  # (2,) and (2, 1) scores
def test_one_score_per_image_is_told_to_give_one_per_class_not_a_batch_dim(end):
    """A one-score head (a BCE-style Linear(.., 1), squeezed or not) keeps its batch dim: the
    class dim is what it lacks."""
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 1)
    )
    model.append(end)
    misfit = classifier_misfit(model, (1, 8, 8), 10)
    assert misfit.kind == "classes" and "no batch dim" not in misfit.why
    with pytest.raises(SpecError, match="10 classes") as info:
        train(model, "digits", None, QUICK)
    assert "no batch dim" not in str(info.value)


def test_a_run_whose_model_fails_on_one_image_still_opens(tmp_path):
    """A run trained before the one-image check keeps opening (eval and report run on
    batches): the check belongs to training and import, which refuse such a model."""
    from cnnlab.train import run as run_module

    model = Squeezed().eval()
    config = {"classes": [str(k) for k in range(10)], "input_shape": [1, 8, 8]}
    assert run_module._check_outputs(model, config, tmp_path, None) is None
    misfit = classifier_misfit(model, (1, 8, 8), 10)
    assert misfit is not None and misfit.kind == "one-image"


# Diagnosis of models whose output is not one logits tensor, as people write them: a dict
# (Hugging Face's ModelOutput), Inception's (logits, aux logits) in train mode only. Truth:
# plain torch's forward hooks and autograd on the same model.


class DictOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.act, self.fc = nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Linear(4, 3)

    def forward(self, x):
        return {"logits": self.fc(self.act(self.conv(x)).mean((2, 3)))}


def _data():
    torch.manual_seed(0)
    return torch.randn(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])


def test_dead_units_and_activation_stats_take_the_output_their_error_asks_for():
    """Their error said 'pass output= (a key or a function)', an argument neither took."""
    model, (x, _) = DictOut().eval(), _data()
    with torch.no_grad():
        _, seen = outputs(model.act, lambda: model(x))
    fired = (seen[0] > 0).flatten(2).any(2).any(0)  # (C,): channels > 0 somewhere
    with pytest.raises(ExplainError, match="pass output="):
        diagnose.dead_units(model, x)
    dead = diagnose.dead_units(model, x, output="logits")
    assert dead.layers[0].dead == int((~fired).sum())
    stats = diagnose.activation_stats(model, x, output=lambda out: out["logits"])
    assert stats.layers[0].mean == pytest.approx(seen[0].mean().item(), rel=1e-5)


def test_gradient_flow_takes_the_output_its_error_asks_for():
    """'pass output=' was the advice, and gradient_flow() had no such argument (TypeError)."""
    model, (x, y) = DictOut(), _data()
    with pytest.raises(ExplainError, match="pass output="):
        diagnose.gradient_flow(model, (x, y))
    flow = diagnose.gradient_flow(model, (x, y), output="logits")
    model.train()
    (g,) = torch.autograd.grad(F.cross_entropy(model(x)["logits"], y), [model.conv.weight])
    assert flow.layers[0].name == "conv"
    assert flow.layers[0].l2 == pytest.approx(g.norm().item(), rel=1e-5)


AUX_FILE = """
from torch import nn


class Inceptionish(nn.Module):
    '''(logits, aux logits) in train mode, the logits alone in eval mode, as Inception v3.'''

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.aux = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
        self.head = nn.Sequential(nn.Conv2d(4, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(8, 10))

    def forward(self, x):
        h = self.stem(x)
        return (self.head(h), self.aux(h)) if self.training else self.head(h)


def make():
    return Inceptionish()
"""


def test_diagnose_and_report_of_an_imported_model_with_aux_logits_in_train_mode(tmp_path, capsys):
    """cnnlab trains no such model, but imports it; diagnose failed on it ('the model returns
    a tuple ...; pass output=', an option the command has not) and the report showed no
    gradient flow. Its gradient flow is measured in eval mode and says so. Truth: autograd
    on the eval-mode model."""
    from cnnlab.cli import main
    from cnnlab.report import facts
    from cnnlab.report.sources import Budget, Sources
    from cnnlab.train.rundir import load_run
    from tiny_nets import imported_run

    run_dir = imported_run(tmp_path, AUX_FILE, data="digits", input_shape=(1, 8, 8))
    run = load_run(run_dir)
    x, y = _data()
    assert not diagnose.train_mode_logits(run.model.train(), x)  # (logits, aux) in train mode
    assert run.model.training  # left as it was
    run.model.eval()
    assert diagnose.train_mode_logits(DictOut(), x, output="logits")
    assert main(["diagnose", str(run_dir), "--limit", "64", "--json"]) == 0
    flow = json.loads(capsys.readouterr().out)["gradient_flow"]
    assert flow["train"] is False and [l["name"] for l in flow["layers"]][0] == "stem.0"
    src = Sources(run_dir, run, None, Budget(gradient_images=64))
    _, xs, ys = src.test
    loss = F.cross_entropy(run.model(xs[:64]), ys[:64])
    (g,) = torch.autograd.grad(loss, [run.model.stem[0].weight])
    health = facts._flow(src)
    assert not health.result.train
    assert health.result.layers[0].l2 == pytest.approx(g.norm().item(), rel=1e-4)


class _Summed(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 10, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x):
        return self.body(x).sum()  # the batch's scores summed: one number


def test_one_number_for_the_batch_is_told_it_has_no_batch_dim_not_to_give_classes():
    """A forward that sums (or averages) over the batch returns shape (): it was 'outputs ()
    per image' and 'give it 10 outputs', which it had, since d9234d7."""
    misfit = classifier_misfit(_Summed(), (1, 8, 8), 10)
    assert misfit.kind == "output" and "shape () for 2 images, no batch dim" in misfit.why
    with pytest.raises(SpecError, match="no batch dim") as info:
        train(_Summed(), "digits", None, QUICK)
    assert "10 outputs" not in str(info.value)
