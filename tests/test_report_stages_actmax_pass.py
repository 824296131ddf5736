"""The report's activation maximisation reads the data's strongest activations of all its
stages in one pass over the test images, where it ran one pass per stage (explain's
`data=`): a model forward of 512 images per stage (MONAI's SwinUNETR at 64 px: 10.7 s each).
Truth: explain's own activation_maximization with data= at each stage gives the same images
and ratios; a forward pre-hook counts the forwards of data batches."""

from __future__ import annotations

import numpy as np

from cnnlab import explain
from cnnlab.report import facts
from cnnlab.report.sources import Budget, Sources
from cnnlab.train.rundir import load_run
from test_walk_practitioner_report_stages import NETS
from tiny_nets import imported_run

BUDGET = Budget(actmax_steps=3, actmax_channels=2, eval_images=600)


def _src(tmp_path) -> Sources:
    path = imported_run(tmp_path, NETS, data="digits")
    return Sources(path, load_run(path), None, BUDGET)


def test_tiles_equal_explain_s_with_data_at_each_stage(tmp_path):
    src = _src(tmp_path)
    tiles = facts._actmax(src)
    _, x, _ = src.test
    stages = src.stages[-BUDGET.actmax_stages :]
    assert len(stages) == 2 and len(tiles) == 4
    for k, layer in enumerate(stages):
        r = explain.activation_maximization(
            src.model, layer, [0, 1], steps=BUDGET.actmax_steps, data=x[:512], restarts=1,
            objective="centre",
        )  # fmt: skip
        imgs = r.images.detach().float()
        lo = imgs.amin((1, 2, 3), keepdim=True)
        imgs = (imgs - lo) / (imgs.amax((1, 2, 3), keepdim=True) - lo).clamp_min(1e-12)
        for i in range(2):
            tile = tiles[2 * k + i]
            assert tile.layer == src.label(layer) and tile.channel == i
            np.testing.assert_array_equal(tile.image, imgs[i].numpy())
            np.testing.assert_allclose(tile.ratio, float(r.ratio[i]), rtol=1e-6)


def test_the_data_is_read_once_for_all_stages(tmp_path):
    src = _src(tmp_path)
    _, x, _ = src.test
    data = len(x[:512])
    assert data > 256  # two batches
    sizes: list[int] = []
    hook = src.model.register_forward_pre_hook(lambda m, args: sizes.append(len(args[0])))
    try:
        facts._actmax(src)
    finally:
        hook.remove()
    # the ascent's forwards are of 2 images (channels x restarts); the data's of 256 and the rest
    assert sorted(n for n in sizes if n > 2) == sorted([256, data - 256])
