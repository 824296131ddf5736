"""The explorer page on a model of 100 classes (a 1-channel 64×64 net, as CIFAR-100-like
sets are): the softmax panel lists every class's logit, exponential and probability, and its
100 rows pushed the feature maps and the dot product 1,700 px down the page. Truth: the page's
own layout (the rows are all there; the feature-map panel within a screen of the softmax's
top)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.train.rundir import Run
from explorer_runs import explorer_page, wait_until

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = [f"class {i}" for i in range(100)]
TOP = "(id) => document.getElementById(id).getBoundingClientRect().top"


def test_a_hundred_classes_keep_the_panels_below_in_reach(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 100))  # fmt: skip
    config = {"data": None, "classes": CLASSES, "mean": [0.5], "std": [0.25]}
    run = Run(tmp_path, None, model.eval(), {**config, "input_shape": [1, 64, 64]})
    with explorer_page(run) as (page, problems):
        page.click("#draw-predict")
        wait_until(page, "state.maps !== null")
        rows = page.locator("#softmax tbody tr").count()
        below = page.evaluate(TOP, "features-panel") - page.evaluate(TOP, "softmax")
        page.locator("#softmax tbody tr").last.scroll_into_view_if_needed()
        last = page.locator("#softmax tbody tr").last.text_content()
        total = page.locator("#softmax tfoot").text_content()
    assert rows == 100 and last.startswith("class 99"), (rows, last)
    assert total.startswith("Σ") and below < 600, (total, below)
    assert not problems, problems
