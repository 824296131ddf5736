"""`cnnlab.train.train` with an nn.Module, as a Python user calls it: what a refusal tells
them to do works, and a module trained on `load_splits(...)` is trained and reopened as with
`--data`."""

from __future__ import annotations

import json
import struct
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.data import load_splits
from cnnlab.errors import SpecError
from cnnlab.train import TrainConfig, load_run, train


def _flat_head_net() -> nn.Module:
    """A conv net whose Flatten + Linear head fixes its input at 1×16×16."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(4 * 8 * 8, 10),
    )  # fmt: skip


def test_a_module_for_other_images_is_told_how_to_convert_the_data_and_that_works():
    """Digits are 1×8×8; a module for 1×16×16 was refused naming only the layer that failed
    (the --input hint is the CLI's, for code). The message names the call that converts the
    data, and training on what it returns passes the check (truth: the module's own forward
    on a 16×16 batch)."""
    net = _flat_head_net()
    assert net(torch.zeros(2, 1, 16, 16)).shape == (2, 10)
    with pytest.raises(SpecError, match=r"load_splits\(data, channels=C, size=\(H, W\)\)"):
        train(net, "digits", None, TrainConfig(epochs=1))
    config = TrainConfig(epochs=1, ema=None, bn_recalibrate=0, tta=False)
    result = train(net, load_splits("digits", channels=1, size=(16, 16)), None, config)
    assert 0 <= result["test_acc"] <= 1


LAZY = """
from torch import nn


def make():
    return nn.Sequential(nn.LazyConv2d(4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))
"""


def _lazy() -> nn.Module:
    return nn.Sequential(nn.LazyConv2d(4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))


def test_a_model_with_lazy_layers_is_told_to_run_once_in_the_factory_and_that_works(tmp_path):
    """nn.LazyConv2d / nn.LazyLinear have no shapes before a first forward: train, import
    and summary died in torch (`.to(memory_format=...)`, `state_dict`, `numel`) with a
    traceback. Now --model code built with no input shape to give them (ModelSource.build())
    gets one SpecError naming the layer and the fix, which (one forward on a dummy batch)
    makes the same model train; a module given to train() is given its shapes from the data,
    and summary its --input's (test_model_code_lazy.py: every command)."""
    from cnnlab.cli import main
    from cnnlab.train.source import parse_model_ref

    nets = tmp_path / "lazynets.py"
    nets.write_text(LAZY)
    fix = r"0\.weight.*lazy.*model\(torch\.zeros\(1, C, H, W\)\)"
    with pytest.raises(SpecError, match=fix):
        parse_model_ref(f"{nets}:make").build()
    # a module given to train takes its shapes from the data (test_train_lazy_modules.py)
    lazy = train(_lazy(), "digits", None, TrainConfig(epochs=1))["model"]
    assert lazy[3].weight.shape == (10, 4 * 8 * 8)  # the LazyLinear, from digits' 1×8×8
    assert main(["summary", "--model", f"{nets}:make", "--input", "1,8,8"]) == 0
    net = _lazy()
    net(torch.zeros(1, 1, 8, 8))  # the fix
    config = TrainConfig(epochs=1, ema=None, bn_recalibrate=0, tta=False)
    assert 0 <= train(net, "digits", None, config)["test_acc"] <= 1


class _Masked(nn.Module):
    """A forward that needs a second input besides the images."""

    def __init__(self):
        super().__init__()
        self.net = _flat_head_net()

    def forward(self, x, mask):
        return self.net(x * mask)


def test_a_forward_needing_more_than_the_images_is_told_so_not_to_give_other_images():
    """`forward(self, x, mask)` was refused with torch's TypeError and the advice to give
    other images (--input), which cannot help: the message names the argument and the fix."""
    from cnnlab.inspect import classifier_misfit

    misfit = classifier_misfit(_Masked(), (1, 16, 16), 10)
    assert misfit is not None and misfit.kind == "call"
    assert "mask" in misfit.why and "--input" not in misfit.why
    with pytest.raises(SpecError, match=r"forward\(x, mask\).*default") as info:
        train(_Masked(), load_splits("digits", size=(16, 16)), None, TrainConfig(epochs=1))
    assert "--input" not in str(info.value) and "load_splits" not in str(info.value)


def test_code_with_another_class_count_is_told_to_pass_it_through_the_factory(tmp_path, capsys):
    """`cnnlab train --model net.py:make` of a 5-class net on 10-class digits said 'give it 10
    outputs'; a factory's argument is how the command line does that: the message names
    the argument whose default is the model's count, and with it the same net trains."""
    from cnnlab.cli import main

    (tmp_path / "net.py").write_text(
        "from torch import nn\n\ndef make(classes=5):\n    return nn.Sequential("
        "nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, classes))\n"
    )
    args = ["train", "--model", f"{tmp_path / 'net.py'}:make", "--data", "digits", "--epochs",
            "1", "--quiet", "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(args) == 2
    assert "--model-arg classes=10 (classes=5 was its default)" in capsys.readouterr().err
    assert main([*args, "--model-arg", "classes=10"]) == 0


# A module trained in Python on `load_splits(...)`, as the README says for a model made for
# other images, is trained and reopened as with `--data`: digits are not flipped by default (a
# mirrored 2 is no digit) and the run records the data set's name, so its test split loads
# again. It recorded "sklearn digits (train)", which nothing could load, and flipped digits.


QUICK = TrainConfig(epochs=1, batch_size=128, tta=False, precision="fp32")


def small() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, 10),
    )  # fmt: skip


def test_a_run_on_load_splits_records_the_data_set_and_its_flip_rule(tmp_path):
    torch.manual_seed(0)
    train_set, test_set = load_splits("digits", channels=3, size=(12, 12))
    assert train_set.loaded_as == "digits"
    result = train(small(), (train_set, test_set), tmp_path / "run", QUICK)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"] == "digits" and config["flip"] is False
    run = load_run(tmp_path / "run", model=small())
    again = run.dataset("test")  # the same images, converted as they were for training
    assert torch.equal(again.images, test_set.images)
    with torch.no_grad():
        logits = run.model(run.preprocess(again.images))
    accuracy = (logits.argmax(1) == again.labels).float().mean().item()
    assert abs(accuracy - result["test_acc"]) < 1e-6


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of uint8 written from the format description: magic, big-endian dims, data."""
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    ) + array.astype(np.uint8).tobytes()  # fmt: skip


@pytest.mark.parametrize("inside", ["", "fashion-mnist"])  # the two places root is searched
def test_a_run_on_fashion_mnist_from_root_reopens_that_directory(tmp_path, inside):
    """`load_splits("fashion-mnist", root=DIR)` recorded "fashion-mnist" and dropped DIR: the
    run reopened the system's copy (10,000 test images) and scored it without an error.
    Truth: the images written to DIR."""
    rng = np.random.default_rng(0)
    files = tmp_path / "custom" / inside
    files.mkdir(parents=True)
    written = {}
    for prefix, n in (("train", 40), ("t10k", 12)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        (files / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        (files / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
        written[prefix] = torch.from_numpy(images)[:, None], torch.from_numpy(labels).long()
    splits = load_splits("fashion-mnist", root=tmp_path / "custom")
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 10)
    )
    train(model, splits, tmp_path / "run", replace(QUICK, batch_size=8))
    run = load_run(tmp_path / "run", model=model)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        again = run.dataset(split)
        assert torch.equal(again.images, written[prefix][0])
        assert torch.equal(again.labels, written[prefix][1])
