"""`cnnlab data`'s Fashion-MNIST options are refused where they do nothing, one line, exit 2,
before anything is fetched: `cnnlab data digits --download DIR` downloaded Fashion-MNIST and
then showed the digits, and --url without --download and --root with another set were ignored
without a word. The download is replaced by a recorder, so a regression reaches no network."""

import pytest

import cnnlab.data
from cnnlab.cli import main


@pytest.mark.parametrize(
    ("name", "why"),
    [("digits", "ships with scikit-learn"), ("shapes", "drawn by cnnlab"), ("{tmp}", "folder")],
)
def test_download_with_a_set_that_is_not_downloaded_is_refused(
    tmp_path, capsys, monkeypatch, name, why
):
    fetched = []
    # `cnnlab data` imports it from cnnlab.data when it runs
    monkeypatch.setattr(cnnlab.data, "download_fashion_mnist", lambda *a, **k: fetched.append(a))
    code = main(["data", name.format(tmp=tmp_path), "--download", str(tmp_path / "dl")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.splitlines()) == 1
    assert "--download is for fashion-mnist" in err and why in err and "nothing to download" in err
    assert fetched == []


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["fashion-mnist", "--url", "http://127.0.0.1:9/"], "--url is the mirror --download"),
        (["shapes", "--root", "{tmp}"], "--root is for fashion-mnist, not 'shapes'"),
    ],
)
def test_a_fashion_option_elsewhere_is_refused(tmp_path, capsys, argv, said):
    code = main(["data", *(a.format(tmp=tmp_path) for a in argv)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and said in err
    assert not (tmp_path / "dl").exists()  # nothing downloaded


@pytest.mark.parametrize("url", ["notaurl", "mirror.example.org/fmnist/"])
def test_a_url_without_a_scheme_is_one_line_before_any_file(tmp_path, capsys, url):
    # urllib's ValueError 'unknown url type' was a traceback
    code = main(["data", "fashion-mnist", "--download", str(tmp_path / "dl"), "--url", url])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"--url {url!r} is not an http://" in err
    assert not (tmp_path / "dl").exists()
