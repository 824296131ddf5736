"""$CNNLAB_DATA set to a path that is no directory (a typo, an unmounted disk) is one error
naming the variable and the path; it was skipped, and Fashion-MNIST read from the cache or
the system copy with no word (as an explicit --data DIR without the files is an error, never
replaced by another copy). Set to a directory, it is searched first, as before."""

from __future__ import annotations

import pytest

from cnnlab.cli import main
from cnnlab.data import fashion as fashion_module
from cnnlab.data import fashion_mnist
from cnnlab.errors import DataError
from test_data_idx import fake_fashion


@pytest.fixture
def system_copy(monkeypatch, tmp_path):
    """Fashion-MNIST only in the system location (the cache empty), as on Debian."""
    monkeypatch.setattr(fashion_module, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(fashion_module, "SYSTEM_DIR", fake_fashion(tmp_path / "system"))
    return tmp_path


@pytest.mark.parametrize("what", ["does not exist", "is not a directory"])
def test_a_cnnlab_data_that_is_no_directory_is_an_error_naming_it(system_copy, monkeypatch, what):
    path = system_copy / "typo"
    if what == "is not a directory":
        path.write_text("")
    monkeypatch.setenv("CNNLAB_DATA", str(path))
    for download in (False, True):  # nor is a copy downloaded around it
        with pytest.raises(DataError, match=rf"^\$CNNLAB_DATA is '{path}', which {what};"):
            fashion_mnist("train", download=download)
    assert not (system_copy / "cache").exists()


def test_the_command_says_it_in_one_line(system_copy, monkeypatch, capsys):
    monkeypatch.setenv("CNNLAB_DATA", str(system_copy / "typo"))
    assert main(["data", "fashion-mnist"]) == 2
    err = capsys.readouterr().err
    assert "$CNNLAB_DATA" in err and str(system_copy / "typo") in err
    assert len(err.strip().splitlines()) == 1


def test_a_directory_given_is_still_searched_and_an_empty_one_still_falls_through(
    system_copy, monkeypatch
):
    fake_fashion(system_copy / "env" / "fashion-mnist", n_train=5)
    monkeypatch.setenv("CNNLAB_DATA", str(system_copy / "env"))
    assert len(fashion_mnist("train")) == 5
    monkeypatch.setenv("CNNLAB_DATA", str(system_copy))  # a directory without the files
    assert len(fashion_mnist("train")) == 6  # the system copy, as documented
