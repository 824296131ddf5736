"""A folder whose images have a constant channel (red and blue shapes, green always 0) gets
std 0 for it; training divides that channel by 1 (`to_float`), wrote the 0 into config.json,
and every command then refused the run it had just made ("std must be positive")."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli import main
from cnnlab.train import TrainConfig, load_run, train
from cnnlab.train.evaluate import evaluate

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread

SPEC = {"name": "rb", "input": [3, 8, 8],
        "layers": [{"conv": {"filters": 4, "kernel": 3, "padding": "same"}}, "relu", "gap",
                   {"linear": 2}]}  # fmt: skip


def test_a_run_with_a_constant_channel_opens(tmp_path):
    for k, name in enumerate(("red", "blue")):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in range(20):
            pixels = np.zeros((8, 8, 3), np.uint8)
            pixels[..., 2 * k] = 150 + i  # green (channel 1) is 0 everywhere
            Image.fromarray(pixels).save(tmp_path / "imgs" / name / f"{i}.png")
    out = tmp_path / "run"
    config = TrainConfig(epochs=1, batch_size=8, precision="fp32", bn_recalibrate=0, tta=False)
    train(SPEC, str(tmp_path / "imgs"), out, config)
    run = load_run(out)
    assert run.std[1] == 0.0
    assert evaluate(run).n == 8  # 20 % of 40 held out
    assert main(["eval", str(out)]) == 0
