"""The explorer page on a conv -> GroupNorm -> ReLU net: a click on the ReLU's map traces its
conv, and the stage table's GroupNorm line shows the formula with this image's μ and σ² over
the unit's group of channels and every position, and the norm's own output. The line said
nothing of the GroupNorm (the chain stopped at the conv: conv output, then nothing).

Truth: the uploaded image read as the server reads it (upload.read_upload), run through the
model with plain forward hooks, and torch.var_mean over the group of the conv's output."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.explorer.upload import read_upload
from cnnlab.train.rundir import Run
from explorer_runs import explorer_page, png_bytes, wait_until
from test_explorer_norm_chains import CONFIG, NORMS, Block, hooked

pytestmark = pytest.mark.usefixtures("one_thread")

NUMBER = r"(-?[\d.]+(?:e[-+]?\d+)?)"
FORMULA = (  # GroupNorm (norm1): (x − μ) / √(σ² + ε) · γ + β = (x − (μ)) / √(σ² + ε) · γ + (β) = y
    r"GroupNorm \(norm1\): \(x − μ\) / √\(σ² \+ ε\) · γ \+ β = "
    rf"\({NUMBER} − \({NUMBER}\)\) / √\({NUMBER} \+ {NUMBER}\) · {NUMBER} \+ \({NUMBER}\) "
    rf"= {NUMBER}; μ, σ² of this image over (.*)"
)
LINES = "[...document.querySelectorAll('#dot-chain li')].map((li) => li.textContent)"


def test_the_stage_table_shows_the_groupnorm_of_this_image(tmp_path):
    torch.manual_seed(5)
    run = Run(
        tmp_path, None, Block(NORMS["groupnorm"]).eval(), {**CONFIG, "input_shape": [1, 9, 9]}
    )
    data = png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 256, (9, 9), np.uint8)))
    (tmp_path / "image.png").write_bytes(data)
    pixels, _ = read_upload(data, "image.png", run.input_shape)
    truth = hooked(run.model, run.preprocess(pixels))
    with explorer_page(run) as (page, problems):
        page.set_input_files("#upload", str(tmp_path / "image.png"))
        wait_until(page, "state.maps !== null")
        page.select_option("#feature-layer", "relu1")
        wait_until(page, "state.maps.layer === 'relu1'")
        page.click("#feature-grid canvas >> nth=3")  # channel 3: the second group's
        page.click("#channel-view", position={"x": 2, "y": 2})  # unit (3, 0, 0)
        wait_until(page, "state.trace !== null")
        lines = page.evaluate(LINES)
        index = page.evaluate("state.trace.index")
    assert index == [3, 0, 0] and len(lines) == 3, (index, lines)
    formula = re.fullmatch(FORMULA, lines[1])
    assert formula, lines[1]
    x, mean, var, eps, gamma, beta, value = (float(n) for n in formula.groups()[:7])
    torch_var, torch_mean = torch.var_mean(truth["conv1"][0, 2:4].double(), unbiased=False)
    norm = run.model.norm1
    assert x == pytest.approx(float(truth["conv1"][0, 3, 0, 0]), rel=1e-5, abs=1e-6)
    assert (mean, var) == pytest.approx((float(torch_mean), float(torch_var)), rel=1e-3)
    assert (eps, gamma, beta) == pytest.approx(
        (norm.eps, norm.weight[3].item(), norm.bias[3].item()), rel=1e-3
    )
    assert value == pytest.approx(float(truth["norm1"][0, 3, 0, 0]), rel=1e-5, abs=1e-6)
    assert formula.group(8) == "channels 2–3, all positions (162 numbers)"  # 2 × 9 × 9
    assert lines[2].startswith("ReLU (relu1), the activation: ") and not problems, problems
