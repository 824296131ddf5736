"""A misspelt preset name is told the preset it likely means (the list alone left the
reader to compare 'resnet_small' with 'resnet-small')."""

from __future__ import annotations

import pytest

from cnnlab.cli import main
from cnnlab.design.spec import load_spec
from cnnlab.errors import SpecError


@pytest.mark.parametrize(
    ("written", "preset"),
    [("fats", "fast"), ("resnet_small", "resnet-small"), ("Fast", "fast"), ("lenet", "lenet5")],
)
def test_a_misspelt_preset_is_told_the_preset(written, preset):
    with pytest.raises(SpecError, match=rf"nor a spec file .*; did you mean {preset}\?$"):
        load_spec(written)
    load_spec(preset)  # and the name suggested is one


def test_a_name_like_no_preset_gets_no_suggestion():
    with pytest.raises(SpecError) as caught:
        load_spec("mynet")
    assert "did you mean" not in str(caught.value)


def test_train_says_it_too(tmp_path, capsys):
    assert main(["train", "--preset", "fats", "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.strip().endswith("did you mean fast?")
    assert not (tmp_path / "run").exists()
