"""A summary lint on a module's second call is attached to that call's row of the explorer's
architecture column: a crop module whose second call leaves no rows has its 'empty-output'
lint on `crop #2`, the row the summary names; the lints were looked up by module name, so it
was on no row (left among the model's own lints). Truth: cnnlab.summary's warnings."""

from __future__ import annotations

import pytest
import torch
from fastapi.testclient import TestClient
from torch import nn

import cnnlab
from cnnlab.explorer import create_app
from cnnlab.train.rundir import Run

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


class Crop(nn.Module):
    """The map's rows from the 5th on: 8 rows leave 4, then 0."""

    def forward(self, x):
        return x[:, :, 4:]


class CropTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.crop, self.fc = nn.Conv2d(1, 2, 3, padding=1), Crop(), nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(self.crop(self.crop(self.conv(x))).mean((2, 3)))


def test_a_lint_on_a_second_call_is_on_that_calls_row():
    torch.manual_seed(0)
    model = CropTwice().eval()
    config = {"data": None, "classes": ["a", "b"], "mean": [0.5], "std": [0.25]}
    client = TestClient(create_app(Run(None, None, model, {**config, "input_shape": [1, 8, 8]})))
    rows = client.get("/api/model").json()["architecture"]["rows"]
    lints = {(w.code, w.layer) for w in cnnlab.summary(model, (1, 8, 8)).warnings}
    assert ("empty-output", "crop #2") in lints
    on_rows = {(lint["code"], row["label"]) for row in rows for lint in row["lints"]}
    assert ("empty-output", "crop #2") in on_rows
    assert on_rows <= lints  # each on the row the summary names
