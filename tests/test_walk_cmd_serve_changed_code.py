"""`cnnlab serve` of a run from code whose file was edited after the explorer cached its top
images, the change accepted (CNNLAB_ACCEPT_CHANGED_CODE=1: the same weights through the new
forward): the cache was keyed by the weights alone, so /api/top answered the old code's top
images. Truth: each channel's spatial max over the test split, by forward hooks on the model
the edited code builds."""

from __future__ import annotations

import pytest
import torch
from fastapi.testclient import TestClient

from cnnlab.explorer import create_app
from cnnlab.train.rundir import load_run
from tiny_nets import imported_run

NETS = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4, classes)

    def forward(self, x):
        return self.fc(self.relu(self.conv(SIGN * x)).mean((2, 3)))


def make(classes=10):
    torch.manual_seed(0)
    return Net(classes)
"""


def _truth(run, channel: int) -> list[float]:
    """The largest responses of `channel` of `relu` over the test images, best first."""
    seen = []
    hook = run.model.relu.register_forward_hook(lambda m, a, y: seen.append(y[:, channel]))
    with torch.no_grad():
        run.model(run.preprocess(run.dataset("test").images))
    hook.remove()
    return sorted(seen[0].amax((1, 2)).tolist(), reverse=True)


def test_top_images_follow_the_code_as_it_is_now(tmp_path, monkeypatch):
    path = imported_run(tmp_path, NETS.replace("SIGN", "1"), data="digits")
    first = TestClient(create_app(path)).get("/api/top?layer=relu&channel=1").json()
    assert [i["value"] for i in first["images"]] == pytest.approx(_truth(load_run(path), 1)[:8])
    (tmp_path / "nets.py").write_text(NETS.replace("SIGN", "-1"))  # the same weights' negative
    monkeypatch.setenv("CNNLAB_ACCEPT_CHANGED_CODE", "1")
    got = TestClient(create_app(path)).get("/api/top?layer=relu&channel=1").json()
    truth = _truth(load_run(path), 1)[: len(got["images"])]
    assert [i["value"] for i in got["images"]] == pytest.approx(truth, abs=1e-5)
