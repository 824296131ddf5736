"""`cnnlab data`'s Fashion-MNIST options are refused where they do nothing, one line, exit
2: --url without --download and --root with another set were ignored without a word."""

import pytest

from cnnlab.cli import main


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
