"""The fix told a model from code with another class count than the data's names the argument
that sets it in Python as well as on the command line: the factory's parameters go with the
model built for training to the check, not through a module-level cache that grew with every
build and that `outputs_fix` alone (a record without a build before it) never found."""

from __future__ import annotations

import pytest

import cnnlab.train.source as source
from cnnlab.errors import SpecError
from cnnlab.train import train
from cnnlab.train.config import TrainConfig
from cnnlab.train.source import outputs_fix, parse_model_ref

NETS = """
from torch import nn

def make(width=4, num_classes=3):
    return nn.Sequential(nn.Conv2d(1, width, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, num_classes))
"""


def test_train_in_python_names_the_argument_that_sets_the_class_count(tmp_path):
    (tmp_path / "nets.py").write_text(NETS)
    model = parse_model_ref(f"{tmp_path / 'nets.py'}:make", [])
    with pytest.raises(SpecError, match=r"--model-arg num_classes=10 \(num_classes=3 was its"):
        train(model, "digits", tmp_path / "run", TrainConfig(epochs=1))
    assert not (tmp_path / "run").exists()


def test_outputs_fix_takes_the_parameters_it_is_given_with_no_build_before_it():
    record = {"kind": "code", "reference": "never_built.py:make", "args": {}, "sha256": "0"}
    parameters = ({"width": 4, "num_classes": 3}, False)
    fix = outputs_fix(record, 10, 3, parameters)
    assert fix == "give it 10 outputs: --model-arg num_classes=10 (num_classes=3 was its default)"
    assert "NAME" in outputs_fix(record, 10, 3, None)  # unknown parameters: any name


def test_building_keeps_no_record_of_the_factory_in_the_module(tmp_path):
    (tmp_path / "nets.py").write_text(NETS)
    before = {k: len(v) for k, v in vars(source).items() if isinstance(v, dict)}
    for width in range(2, 6):
        parse_model_ref(f"{tmp_path / 'nets.py'}:make", [f"width={width}"]).build()
    after = {k: len(v) for k, v in vars(source).items() if isinstance(v, dict)}
    assert after == before


def test_a_factory_none_of_whose_arguments_set_the_count_is_told_to_change_its_layer():
    """make_net(width=32) given width=8 gives 10 outputs: no argument set them (an int default
    of 32, not 10; the 8 given is not 10 either), yet the fix said `--model-arg NAME=3`."""
    record = {"kind": "code", "reference": "mynet.py:make_net", "args": {"width": "8"}}
    fix = outputs_fix(record, 3, 10, ({"width": 32}, False))
    assert "NAME" not in fix
    assert fix == (
        "give it 3 outputs: no argument of make_net(width) set its 10 (none defaults to 10), "
        "so change its last layer to 3 outputs (or give make_net a parameter for them)"
    )
    # a parameter without a default may be the one: it is named
    fix = outputs_fix(record, 3, 10, ({"width": 32, "head": None, "n": source._NONE}, False))
    assert fix.endswith("of make_net(head, n) that sets them: --model-arg NAME=3")
