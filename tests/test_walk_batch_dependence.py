"""A model whose eval-mode logits for an image change with the other images in its batch (a
BatchNorm without running statistics, a forward that puts a BatchNorm in training mode)
trained and imported without a word, while `eval` (batches), `predict` and `explain` (one
image) gave one image different classes. Training and import now say so, naming the layers;
a model whose answers are each image's own gets no note. Truth: torch's own eval-mode forward
of a test image alone and beside another."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.inspect.alone import batch_note
from cnnlab.train import TrainConfig, train
from cnnlab.train.importing import import_run
from cnnlab.train.source import parse_model_ref

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = TrainConfig(epochs=1, batch_size=64, precision="fp32")

NETS = """
import torch
from torch import nn


def net(track=True):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8, track_running_stats=track), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
    )


class Forced(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = net()

    def forward(self, x):
        self.body[1].train()  # a test-time adaptation written into forward
        return self.body(x)


def forced():
    return Forced()


class Dropped(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = net()

    def forward(self, x):
        return torch.nn.functional.dropout(self.body(x), 0.5)  # training=True unless given


def dropped():
    return Dropped()
"""


def _net(track: bool) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8, track_running_stats=track), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
    )  # fmt: skip


def _alone_differs(model: nn.Module) -> bool:
    """torch itself: the eval-mode logits of image 0 alone and beside image 1 differ."""
    from cnnlab.data import load_dataset

    test = load_dataset("digits", "test")
    x = test.images[:2].float() / 255
    model.eval()
    with torch.no_grad():
        return not torch.allclose(model(x)[:1], model(x[:1]), rtol=1e-4, atol=1e-5)


def _batch_notes(notes: list[str], said: str = "other images share its batch") -> list[str]:
    return [n for n in notes if said in n]


def test_training_a_batchnorm_without_running_statistics_says_so():
    """The same net with running statistics answers each image alone, and gets no note."""
    result = train(_net(track=False), "digits", None, CONFIG)
    assert _alone_differs(result["model"])
    [note] = _batch_notes(result["notes"])
    assert "BatchNorm layers 1 keep no running statistics" in note
    assert "track_running_stats=True" in note
    result = train(_net(track=True), "digits", None, CONFIG)
    assert not _alone_differs(result["model"])
    assert _batch_notes(result["notes"]) == []


def test_importing_a_forward_that_trains_its_batchnorm_names_it(tmp_path):
    from safetensors.torch import save_file

    (tmp_path / "nets.py").write_text(NETS)
    ref = parse_model_ref(f"{tmp_path / 'nets.py'}:forced")
    save_file(ref.build().state_dict(), tmp_path / "w.safetensors")
    result = import_run(ref, tmp_path / "w.safetensors", tmp_path / "run", data="digits")
    assert _alone_differs(ref.build())
    [note] = _batch_notes(result["notes"])
    assert "its forward puts body.1 in training mode" in note


def test_the_check_leaves_the_models_statistics_and_modes_as_they_were(tmp_path):
    """Its forwards train the BatchNorm (they move its running mean); afterwards the state
    and every module's mode are those before it, and the global RNG has not moved."""
    (tmp_path / "nets.py").write_text(NETS)
    model = parse_model_ref(f"{tmp_path / 'nets.py'}:forced").build().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    assert batch_note(model, (1, 8, 8), "model") != []
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(m.training for m in model.modules())
    assert torch.equal(torch.get_rng_state(), rng)


def test_importing_a_dropout_left_on_in_eval_says_so(tmp_path):
    """F.dropout(x, p) trains unless told otherwise: its eval-mode logits change from one
    forward to the next (torch itself: the same image twice), and the note said the batch
    did it ('a layer mixes the images of a batch')."""
    from safetensors.torch import save_file

    (tmp_path / "nets.py").write_text(NETS)
    ref = parse_model_ref(f"{tmp_path / 'nets.py'}:dropped")
    save_file(ref.build().state_dict(), tmp_path / "w.safetensors")
    result = import_run(ref, tmp_path / "w.safetensors", tmp_path / "run", data="digits")
    model = ref.build().eval()
    x = torch.rand(1, 1, 8, 8)
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))
    [note] = _batch_notes(result["notes"], "at each eval-mode forward")
    assert "F.dropout(x, p)" in note and "training=self.training" in note


def test_import_saves_the_weights_it_was_given(tmp_path):
    """A forward that trains its own BatchNorm moves its running statistics at every call:
    import's checks of the outputs ran such forwards before the weights were written, so the
    run held other statistics than the file given (and evaluated those). Truth: the file's
    own tensors, read back with safetensors from the run."""
    from safetensors.torch import load_file, save_file

    (tmp_path / "nets.py").write_text(NETS)
    ref = parse_model_ref(f"{tmp_path / 'nets.py'}:forced")
    given = ref.build().state_dict()
    given["body.1.running_mean"] = torch.linspace(-1, 1, 8)  # not what a forward leaves
    save_file(given, tmp_path / "w.safetensors")
    import_run(ref, tmp_path / "w.safetensors", tmp_path / "run", data="digits")
    saved = load_file(tmp_path / "run" / "model.safetensors")
    for name, tensor in given.items():
        assert torch.equal(saved[name], tensor), name
