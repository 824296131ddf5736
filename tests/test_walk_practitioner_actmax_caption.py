"""The report's activation-maximisation caption names what is maximised and compared: the
centre unit of each channel (the report's objective). It said 'none of them makes the channel
positive' of a channel no test image makes positive at its centre, where the channel's map
was positive elsewhere (a BatchNorm output before the forward's F.relu, on a ResNet from
code). Truth: the layer's own output on the data, by a forward hook."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from cnnlab.explain import activation_maximization
from cnnlab.report import Budget, show
from cnnlab.report.facts import ActmaxTile


def test_a_channel_positive_off_centre_is_not_said_never_positive():
    model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.Flatten(), nn.Linear(49, 2))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.fill_(-0.5)  # x - 0.5: positive where the image is 1
    data = torch.ones(8, 1, 7, 7)
    data[:, :, 2:5, 2:5] = 0  # dark centre, bright border
    r = activation_maximization(model, "0", [0], steps=2, data=data, restarts=1)
    with torch.no_grad():
        channel = model[0](data)[:, 0]
    assert float(channel.amax()) > 0  # the channel is positive on the data...
    assert float(channel[:, 3, 3].amax()) <= 0 and float(r.data_max[0]) <= 0  # ...not its centre
    tile = ActmaxTile("0 Conv2d", 0, r.images[0].numpy(), float(r.ratio[0]), len(data))
    facts = SimpleNamespace(budget=Budget(actmax_channels=1, actmax_steps=2))
    caption = show.show_actmax([tile], facts)[0]["caption"]
    assert "makes the channel positive" not in caption
    assert "no test image makes the channel's centre unit positive" in caption
    assert "of the last layer of each stage, each at its centre unit" in caption


def test_the_report_maximises_the_centre_unit(monkeypatch):
    """What the caption names is what facts._actmax asks explain for."""
    from cnnlab.report import facts

    asked = []

    def record(*args, **kwargs):
        asked.append(kwargs.get("objective"))
        raise RuntimeError("stop")

    monkeypatch.setattr(facts.explain, "activation_maximization", record)
    src = SimpleNamespace(
        budget=Budget(actmax_stages=1, actmax_channels=1),
        test=(None, torch.zeros(2, 1, 4, 4), None),
        traced=[("0", (1, 2, 4, 4))],
        stages=["0"],
        model=None,
    )
    try:
        facts._actmax(src)
    except RuntimeError:
        pass
    assert asked == ["centre"]
