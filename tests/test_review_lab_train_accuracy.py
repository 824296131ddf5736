"""The overfitting gaps (sharing, heads) read a training accuracy on the images the weights
were fitted on: the training subset less the trainer's validation split (10 %), which is no
more training data than the test images are. Truths: the trainer's own val_acc on the
images left out, and the image counts each measure scored."""

from __future__ import annotations

import pytest
import torch

from cnnlab.lab import ex_heads, ex_sharing
from cnnlab.lab.experiment import Context, Trained
from cnnlab.lab.models import mlp, spec

pytestmark = pytest.mark.usefixtures("one_thread")


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
