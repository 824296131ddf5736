"""smoothgrad's count, noise and batch arguments refused with one line naming the argument and
a valid value (a float n failed inside range() with a TypeError)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.errors import ExplainError
from cnnlab.explain import smoothgrad


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
    ).eval()


@pytest.mark.parametrize(
    ("kw", "named"),
    [
        ({"n": 2.5}, "n=50"),
        ({"n": 0}, "n=50"),
        ({"n": -1}, "n=50"),
        ({"n": "5"}, "n=50"),
        ({"n": True}, "n=50"),
        ({"sigma": -0.1}, "sigma=0.15"),
        ({"sigma": float("nan")}, "sigma=0.15"),
        ({"sigma": "0.1"}, "sigma=0.15"),
        ({"batch_size": 2.5}, "batch_size=64"),
    ],
)
def test_bad_arguments_are_named_with_a_valid_example(kw, named):
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ExplainError, match=rf"e\.g\. {named}\); got {next(iter(kw))}="):
        smoothgrad(model(), x, **kw)


def test_whole_numbers_of_any_integer_type_still_run():
    x = torch.randn(2, 3, 8, 8)
    a = smoothgrad(model(), x, n=np.int64(3), sigma=0, batch_size=np.int32(4))
    b = smoothgrad(model(), x, n=3, sigma=0.0, batch_size=4)
    assert torch.equal(a, b) and a.shape == (2, 8, 8)


def test_overlay_scale_draws_a_saliency_map_as_the_cli_does():
    """Truth: the CLI's own heatmaps (`_heatmaps`: the map / its max) drawn by overlay, and
    the colormap of heat / heat.max() by hand."""
    from matplotlib import colormaps

    from cnnlab import explain
    from cnnlab.cli.explain import _heatmaps

    torch.manual_seed(0)
    x = torch.rand(2, 3, 8, 8)
    maps = explain.saliency(model(), x)
    assert float(maps.amax()) < 1  # in range, unscaled
    cli = _heatmaps(type("Run", (), {"model": model()})(), x, "saliency", None, None)
    torch.testing.assert_close(explain.overlay(x, maps, scale=True), explain.overlay(x, cli))
    for i in range(2):
        heat = maps[i] / maps[i].max()
        colours = torch.from_numpy(colormaps["jet"](heat.numpy())[..., :3]).permute(2, 0, 1)
        torch.testing.assert_close(
            explain.overlay(x[i], maps[i], scale=True), 0.5 * x[i] + 0.5 * colours.float()
        )
    # as given by default: a map whose values mean something keeps them
    assert not torch.allclose(explain.overlay(x, maps), explain.overlay(x, cli))
    zeros = torch.zeros(8, 8)
    torch.testing.assert_close(
        explain.overlay(x[0], zeros, scale=True), explain.overlay(x[0], zeros)
    )
