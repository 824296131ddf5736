"""Models whose forward returns the class scores in another shape than (B, K): the fully
convolutional nets of SqueezeNet and NiN end in a 1×1 conv with K filters and a global
pooling, leaving (B, K, 1, 1). Truth: torch's cross-entropy on the same output."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import SpecError
from cnnlab.inspect import classifier_misfit
from cnnlab.train import TrainConfig, train

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


def test_a_run_whose_model_fails_on_one_image_still_opens(tmp_path):
    """A run trained before the one-image check keeps opening (eval and report run on
    batches): the check belongs to training and import, which refuse such a model."""
    from cnnlab.train import run as run_module

    model = Squeezed().eval()
    config = {"classes": [str(k) for k in range(10)], "input_shape": [1, 8, 8]}
    assert run_module._check_outputs(model, config, tmp_path, None) is None
    misfit = classifier_misfit(model, (1, 8, 8), 10)
    assert misfit is not None and misfit.kind == "one-image"
