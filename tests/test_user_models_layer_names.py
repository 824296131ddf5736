"""The layers of wrapped and deep models as cnnlab's views name them: probe's default layers
of a model wrapped to return its logits are the inner model's blocks, a transformers model's
are its stages; the report's figures lay out long layer names; the explorer says which call
of a module run twice a row is. Truth: the same network unwrapped, the model's own modules,
the summary's own rows."""

from __future__ import annotations

import warnings

import pytest
import torch
from fastapi.testclient import TestClient
from torch import nn

import cnnlab
from cnnlab.explain.probe import default_probe_layers
from cnnlab.explorer import create_app
from cnnlab.report import plots
from cnnlab.train import TrainConfig, train
from cnnlab.train.rundir import load_run

QUICK = TrainConfig(epochs=1, batch_size=128, flip=False, tta=False, precision="fp32")


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


class Logits(nn.Module):
    """A wrapper practitioners write around a library model: forward returns its logits."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        out = self.net(pixel_values=x) if hasattr(self.net, "config") else self.net(x)
        return out.logits if hasattr(out, "logits") else out


def test_probe_layers_of_a_wrapped_model_are_the_inner_models_blocks():
    inner = Logits(
        nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(4, 8, 3),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8, 10),
        )
    )  # fmt: skip  (a module of its own, not a container, around the layers)
    x = torch.zeros(1, 1, 8, 8)
    own = default_probe_layers(inner, x)
    assert len(own) == 8  # the truth: what the same network gets unwrapped
    assert default_probe_layers(Logits(inner), x) == [f"net.{name}" for name in own]


def tiny_hf_resnet() -> nn.Module:
    """A two-stage transformers ResNet for 3 classes, its logits unwrapped (`Logits`)."""
    transformers = pytest.importorskip("transformers")
    config = transformers.ResNetConfig(
        num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
        layer_type="basic", num_labels=3,
    )  # fmt: skip
    return Logits(transformers.ResNetForImageClassification(config))


def test_probe_layers_of_a_transformers_model_are_its_stages():
    model = tiny_hf_resnet().eval()
    layers = default_probe_layers(model, torch.zeros(1, 3, 24, 24))
    stages = [n for n, m in model.named_modules() if type(m).__name__ == "ResNetStage"]
    assert len(stages) == 2 and all(stage in layers for stage in stages)
    assert layers[0] == "net.resnet.embedder" and layers[-1] == "net.classifier.1"


def test_report_figures_of_a_deep_models_layer_names_lay_out():
    model = tiny_hf_resnet()
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert max(map(len, names)) > 50  # net.resnet.encoder.stages.1.layers.0.layer.0.convolution
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "Tight layout not applied" was raised
        plots.receptive_fields(names, [3.0] * len(names), [2.0] * len(names))
        plots.probe(names, [0.5] * len(names), 0.3)
        plots.hbars(names, [1.0] * len(names), "L2", "gradient flow")
    for name in [*names, "fc", "layer4.1"]:
        label = plots.layer_label(name)
        assert label == name if len(name) <= plots.LABEL_CHARS else len(label) == 30
        assert name.endswith(label.removeprefix("…"))


def test_the_explorers_layers_say_which_call_of_a_module_run_twice(tmp_path):
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(1, 4, 3, padding=1)
            self.block = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
            self.fc = nn.Linear(4, 10)

        def forward(self, x):
            return self.fc(self.block(self.block(self.stem(x))).mean((2, 3)))

    model = Twice()
    train(model, "digits", tmp_path / "run", QUICK)
    run = load_run(tmp_path / "run", model=Twice())
    rows = TestClient(create_app(run)).get("/api/model").json()["architecture"]["rows"]
    truth = cnnlab.summary(Twice(), (1, 8, 8)).rows  # the summary's own rows, one per call
    assert [(r["name"], r["call"]) for r in rows] == [(r.name, r.call) for r in truth]
    assert ("block.0", 2) in [(r["name"], r["call"]) for r in rows]
