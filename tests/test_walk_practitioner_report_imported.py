"""The report's overview of a run made by `cnnlab import`: its config records no machine and
no recipe, because the weights were trained elsewhere; the overview said the run was 'trained
before cnnlab recorded the machine' and left the recipe row empty. Truth: the run's own
config.json."""

from __future__ import annotations

import html
import json
import re

from cnnlab.cli import main
from tiny_nets import imported_run

NET = """
import torch
from torch import nn


def make():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 10))
"""


def _row(page: str, key: str) -> str:
    found = re.search(rf"<th[^>]*>\s*{key}\s*</th>\s*<td[^>]*>(.*?)</td>", page, re.S)
    assert found, key
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", found[1])).split())


def test_an_imported_runs_machine_and_recipe_say_it_was_imported(tmp_path):
    path = imported_run(tmp_path, NET, data="digits")
    config = json.loads((path / "config.json").read_text())
    assert "imported" in config and "machine" not in config and "optimizer" not in config
    assert main(["report", str(path)]) == 0
    page = (path / "report.html").read_text()
    machine = _row(page, "machine")
    assert "imported: trained elsewhere" in machine
    assert "trained before cnnlab recorded the machine" not in machine
    assert (
        _row(page, "recipe") == "not recorded: the weights were trained elsewhere (cnnlab import)"
    )
