"""The controls the lab's experiments compare against, checked on their real `measure` with
the training stubbed out (the nets keep their initial weights, so this runs in seconds): the
hierarchy's probes are scored on images that neither the net nor the probe was fitted on,
and the explanations' deletion removes pixels to the per-pixel training mean, for the maps
and for the random order alike. Truth: the images themselves (bytes compared) and numpy's
mean of the training images.

The overfitting gaps (sharing, heads) read a training accuracy on the images the weights
were fitted on: the training subset less the trainer's validation split (10 %), which is no
more training data than the test images are. Truths: the trainer's own val_acc on the
images left out, and the image counts each measure scored."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnlab.lab import ex_explanations, ex_heads, ex_hierarchy, ex_sharing
from cnnlab.lab.experiment import Context, Trained
from cnnlab.lab.models import mlp, spec

pytestmark = pytest.mark.usefixtures("one_thread")


class Untrained(Context):
    """A quick Context whose `train` returns the net it would start from, untrained."""

    def train(self, model, data, seed, **config):
        return self.untrained(model, data, seed)


def rows(images) -> set[bytes]:
    return {bytes(x.numpy().tobytes()) for x in images}


def test_hierarchy_probes_are_scored_on_held_out_images(monkeypatch):
    """Fitted on training images, scored on images of the test split: none of them was seen by
    the net in training or by the probe in fitting."""
    calls = []

    def probe(model, train, test, layers, epochs):
        calls.append((train, test))
        return dict.fromkeys(["input", *layers], 0.5)

    monkeypatch.setattr(ex_hierarchy, "linear_probe", probe)
    ctx = Untrained(quick=True)
    m = ex_hierarchy.measure(ctx)
    net_train, _ = ctx.fashion_default()
    assert len(calls) == 2 and m["probe_test_images"] > 0  # trained and random net
    stats = ctx.untrained(ex_hierarchy.spec("h", ex_hierarchy.LAYERS_SPEC), (net_train, None), 0)
    seen_by_net = rows(stats.inputs(net_train.images))  # as the probes get them: normalized
    for (fit_x, _), (score_x, _) in calls:
        assert len(score_x) == m["probe_test_images"]
        assert not rows(fit_x) & rows(score_x)
        assert not rows(score_x) & seen_by_net
        assert rows(fit_x) <= seen_by_net  # the probe is fitted on training images


def test_deletion_removes_to_the_training_mean_for_maps_and_random_order(monkeypatch):
    seen = []
    real = ex_explanations.deletion

    def deletion(trained, images, labels, order, baseline):
        seen.append(baseline)
        return real(trained, images, labels, order, baseline)

    monkeypatch.setattr(ex_explanations, "deletion", deletion)
    monkeypatch.setattr(ex_explanations, "STAGES", {"head": ["13"]})  # one stage is enough
    ctx = Untrained(quick=True)
    ex_explanations.measure(ctx)
    train, _ = ctx.fashion_default()
    truth = np.rint(train.images.numpy().astype(np.float64).mean(0)).astype(np.uint8)
    assert len(seen) == 1 + len(ex_explanations.METHODS)  # random order, then each method
    for baseline in seen:
        assert np.array_equal(baseline.numpy(), truth)
    assert truth.max() > 100  # where garments usually are, the baseline is far from black


def test_removing_a_background_pixel_changes_it():
    """Fashion-MNIST's background is 0: removing to 0 left it as it was; to the mean it moves.
    Truth: the pixels listed first in the order hold the baseline, all others are untouched."""
    import torch

    images = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    images[:, :, 1:3, 1:3] = 200  # a garment in the middle, black around it
    baseline = torch.full((1, 4, 4), 90, dtype=torch.uint8)
    baseline[0, 0, 0] = 0
    order = torch.stack([torch.arange(16), torch.arange(16).flip(0)])  # (2, 16)
    cut = ex_explanations.removed(images, order, 3, baseline)
    flat, before = cut.flatten(1), images.flatten(1)
    for row in range(2):
        first = order[row, :3]
        assert torch.equal(flat[row, first], baseline.flatten()[first])
        rest = order[row, 3:]
        assert torch.equal(flat[row, rest], before[row, rest])
    assert cut[0, 0, 0, 1] == 90 and cut[1, 0, 3, 3] == 90  # background pixels now grey


def test_a_wholly_dead_relu_layer_gives_every_image_the_same_logits():
    """What `ex_dying.silent` reads from the dead shares alone, on the experiment's own net
    (three conv blocks, ReLU, no batch norm, GAP head): with the last conv's bias pushed far
    negative every channel of that ReLU is dead (dead_units: 1.0) and the logits are the head's
    bias for every image, so the net cannot beat chance. Truth: torch's outputs and the head's
    bias."""
    import torch

    from cnnlab.design.build import build
    from cnnlab.design.spec import load_spec
    from cnnlab.diagnose import dead_units
    from cnnlab.lab import ex_dying
    from cnnlab.lab.models import conv_stack, head, spec

    torch.manual_seed(0)
    layers = conv_stack((16, 32, 32), act="relu", bn=False) + head("gap")
    model = build(load_spec(spec("relu", layers))).eval()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        convs[-1].bias.fill_(-1e4)
    x = torch.randn(64, 1, 28, 28)
    shares = [layer.dead_share for layer in dead_units(model, x).layers]
    with torch.no_grad():
        logits = model(x)
    assert shares[-1] == 1.0 and shares[0] < 1.0
    assert torch.allclose(logits, linear.bias.expand_as(logits))
    run = {"lr": 1.0, "diverged": False, "dead": 0.5, "dead_per_layer": shares, "test": 10.0}
    assert ex_dying.silent(run) and ex_dying.judged(run)


def test_trained_on_is_what_the_trainer_fitted_on():
    ctx = Context(quick=True)
    train, test = ctx.fashion(200, 100)
    trained = ctx.train(spec("m", mlp((8,))), (train, test), 0, epochs=1)
    fitted = {bytes(x.numpy().tobytes()) for x in trained.trained_on.images}
    left = torch.tensor([bytes(x.numpy().tobytes()) not in fitted for x in train.images])
    assert len(trained.trained_on) == 180 and int(left.sum()) == 20
    held_out = trained.accuracy(train.images[left], train.labels[left])
    assert held_out == pytest.approx(trained.metrics["val_acc"], abs=1e-6)


class Stub(Context):
    """`train` returns the model untrained, with the part the trainer would fit on."""

    def train(self, model, data, seed, **config):
        from cnnlab.design.build import build
        from cnnlab.design.spec import load_spec
        from cnnlab.lab.experiment import LAB_CONFIG, _train_part
        from cnnlab.train import TrainConfig

        cfg = TrainConfig(**{**LAB_CONFIG, "seed": seed})
        part = _train_part(data[0], cfg)
        net = model if isinstance(model, torch.nn.Module) else build(load_spec(model))
        return Trained(net.eval(), (0.5,), (0.25,), {}, [], part)


@pytest.mark.parametrize("module", [ex_sharing, ex_heads], ids=lambda m: m.__name__)
def test_the_train_accuracy_is_on_the_fitted_images(module, monkeypatch):
    scored = []
    real = Trained.accuracy

    def accuracy(self, images, labels):
        scored.append(len(images))
        return real(self, images, labels)

    monkeypatch.setattr(Trained, "accuracy", accuracy)
    ctx = Stub(quick=True)
    module.measure(ctx)
    train, test = ctx.fashion_default()
    assert len(train) in (2000,) and 1800 in scored  # the fitted part, 90 % of the subset
    assert len(train) not in scored  # never the whole subset, validation images included
