"""`cnnlab data digits --download DIR` is refused, one line, exit 2, before anything is
fetched: it downloaded Fashion-MNIST and then showed the digits. The download is replaced by
a recorder, so a regression reaches no network."""

import pytest

import cnnlab.cli.data as data_cli
from cnnlab.cli import main


@pytest.mark.parametrize(
    ("name", "why"),
    [("digits", "ships with scikit-learn"), ("shapes", "drawn by cnnlab"), ("{tmp}", "folder")],
)
def test_download_with_a_set_that_is_not_downloaded_is_refused(
    tmp_path, capsys, monkeypatch, name, why
):
    fetched = []
    monkeypatch.setattr(data_cli, "download_fashion_mnist", lambda *a, **k: fetched.append(a))
    code = main(["data", name.format(tmp=tmp_path), "--download", str(tmp_path / "dl")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.splitlines()) == 1
    assert "--download is for fashion-mnist" in err and why in err and "nothing to download" in err
    assert fetched == []
