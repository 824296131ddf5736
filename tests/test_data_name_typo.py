"""A mistyped data set name is told the set it is nearest to, as a mistyped preset is
('fashon-mnist' was told the list alone); a name near none gets the list alone."""

import pytest

from cnnlab.cli import main
from cnnlab.data import load_splits
from cnnlab.errors import DataError


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("fashon-mnist", "fashion-mnist"), ("digit", "digits"), ("fmnst", "fashion-mnist")],
)
def test_a_typo_is_told_the_nearest_set(typo, meant, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=f"unknown data set '{typo}'.*; did you mean {meant}\\?$"):
        load_splits(typo)


def test_a_name_near_no_set_gets_the_list_alone(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["data", "imagenet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("one sub-folder of images per class") and "did you mean" not in err
