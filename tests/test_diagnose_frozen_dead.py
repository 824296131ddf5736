"""Dead units behind frozen weights. A ReLU whose inputs no trainable weight reaches (a frozen
stem) has dead units no training step made or can revive: diagnose told the user to lower the
learning rate or change the init for them. They are still listed and flagged (they are dead),
marked `frozen`, and their finding says what is true of them. Truth: a few SGD steps at a
high rate leave the frozen site's output bit-identical and change the trained one's. A site
computed with autograd off is not marked: a reentrant checkpoint runs so, and trains."""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from cnnlab.diagnose import dead_units, epoch_diagnostics, findings
from cnnlab.report import Budget
from cnnlab.report.facts import _dead


class Net(nn.Module):
    """Frozen stem (2 of 6 channels dead: bias -100), trained body (3 of 8 dead), a head."""

    def __init__(self, no_grad: bool = False):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(6, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(8, 3)
        with torch.no_grad():
            self.stem[0].bias.copy_(torch.tensor([-100.0] * 2 + [1.0] * 4))
            self.body[0].bias.copy_(torch.tensor([-100.0] * 3 + [1.0] * 5))
        self.no_grad = no_grad
        if not no_grad:
            self.stem.requires_grad_(False)

    def forward(self, x):
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.no_grad):
            h = self.stem(x)
        return self.head(self.body(h).mean((2, 3)))


def data(n: int = 24):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


def site_outputs(model, x) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return {"stem.1": model.stem(x), "body.1": model.body(model.stem(x))}


def trained_a_little(model, x, y):
    """Three SGD steps at lr 1 on what trains (the truth of 'training can change it')."""
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


def test_dead_units_behind_frozen_weights_are_marked_frozen_and_advised_truthfully():
    torch.manual_seed(0)
    model = Net()
    x, y = data()
    flags = [p.requires_grad for p in model.parameters()]
    d = dead_units(model, x)
    assert [p.requires_grad for p in model.parameters()] == flags  # left as it was
    by = {l.name: l for l in d.layers}
    assert (by["stem.1"].dead, by["body.1"].dead) == (2, 3)
    assert by["stem.1"].flagged and by["body.1"].flagged  # dead either way
    before = site_outputs(model, x)
    trained_a_little(model, x, y)
    after = site_outputs(model, x)
    assert torch.equal(before["stem.1"], after["stem.1"])  # no step can change it
    assert not torch.equal(before["body.1"], after["body.1"])
    assert by["stem.1"].frozen and not by["body.1"].frozen
    stem, body = findings(dead=d)
    assert "frozen" in stem.message and "learning rate (or warm" not in stem.fix
    assert "frozen" not in body.message and "lower the learning rate" in body.fix
    assert d.to_dict()["layers"][0]["frozen"] is True


def test_a_model_frozen_whole_marks_nothing_frozen():
    """Every parameter without requires_grad (a model readied for inference): 'frozen' would
    mark every layer and say nothing; the gradient flow judges it so too."""
    model = Net()
    model.requires_grad_(False)
    assert not any(l.frozen for l in dead_units(model, data()[0]).layers)


def test_the_epoch_log_is_unchanged_and_the_reports_bars_say_frozen():
    model, (x, y) = Net(), data()
    logged = epoch_diagnostics(model, x, y)
    assert logged["dead_share"] == {"stem.1": round(2 / 6, 4), "body.1": round(3 / 8, 4)}
    test = (None, x, y)
    src = SimpleNamespace(
        test=test, budget=Budget(diagnose_images=24), label=lambda n: n, model=model
    )
    assert _dead(src).labels == ("stem.1 (frozen)", "body.1")


class Checkpointed(nn.Module):
    """A trained stem, then a block run by a reentrant checkpoint (autograd off inside its
    forward; its weights train through the recomputation), 2 of its 6 channels dead."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.block = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(6, 3)
        with torch.no_grad():
            self.block[0].bias.copy_(torch.tensor([-100.0] * 2 + [1.0] * 4))

    def forward(self, x):
        h = checkpoint(self.block, self.stem(x), use_reentrant=True)
        return self.head(h.mean((2, 3)))


def test_a_site_computed_with_autograd_off_is_not_marked_frozen():
    """Inside a reentrant checkpoint the block trains (truth: SGD changes its output), so
    'frozen' there would be false; under the user's torch.no_grad() it is cut off, which
    the probe cannot tell from a checkpoint: neither is marked."""
    torch.manual_seed(0)
    x, y = data()
    model = Checkpointed()
    d = dead_units(model, x)
    assert [(l.name, l.dead, l.frozen) for l in d.layers] == [("block.1", 2, False)]
    before = model.block(model.stem(x)).detach()
    trained_a_little(model, x, y)
    assert not torch.equal(before, model.block(model.stem(x)).detach())
    assert not any(l.frozen for l in dead_units(Net(no_grad=True), x).layers)


class InferenceOnly(Net):
    """A forward that refuses autograd (its own guard): the probe fails, the count does not."""

    def forward(self, x):
        if torch.is_grad_enabled():
            raise AssertionError("inference only")
        return super().forward(x)


def test_a_forward_that_refuses_autograd_is_counted_and_marked_nowhere():
    d = dead_units(InferenceOnly(), data()[0])
    assert [(l.dead, l.frozen) for l in d.layers] == [(2, False), (3, False)]


class NormedStem(nn.Module):
    """A frozen conv -> BatchNorm -> ReLU stem (a pretrained backbone's), a trained head."""

    def __init__(self, track: bool):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6, track_running_stats=track), nn.ReLU()
        )
        self.head = nn.Linear(6, 3)
        with torch.no_grad():
            self.stem[1].bias.fill_(-0.5)
        self.stem.requires_grad_(False)

    def forward(self, x):
        return self.head(self.stem(x).mean((2, 3)))


def test_a_frozen_stems_batchnorm_that_tracks_statistics_is_not_frozen():
    """'Frozen' said 'training neither killed these units nor can revive them' of a ReLU after
    a frozen conv and BatchNorm; training in train mode moves the BatchNorm's running
    statistics, which can kill units. Truth: a few steps change that site's eval output, and
    leave it bit-identical when the norm keeps no statistics."""
    x, y = data()
    for track in (True, False):
        torch.manual_seed(0)
        model = NormedStem(track)
        site = {l.name: l for l in dead_units(model, x).layers}["stem.2"]
        model.eval()
        with torch.no_grad():
            before = model.stem(x)
        model.train()
        trained_a_little(model, x * 3 + 1, y)  # other data: other batch statistics
        model.eval()
        with torch.no_grad():
            moved = not torch.equal(before, model.stem(x))
        assert (moved, site.frozen) == (track, not track)
