"""`summary --model` says what is wrong with the reference before asking for --input: a
mistyped file was told only '--model needs --input C,H,W', and with --input added, next, that
the file does not exist."""

from cnnlab.cli import main


def test_a_missing_model_file_is_named_before_the_missing_input(tmp_path, capsys):
    assert main(["summary", "--model", f"{tmp_path}/mynt.py:make_net"]) == 2
    err = capsys.readouterr().err
    assert f"no such file {tmp_path}/mynt.py" in err and "--input" not in err, err


def test_a_malformed_model_arg_is_named_before_the_missing_input(tmp_path, capsys):
    net = tmp_path / "net.py"
    net.write_text("from torch import nn\n\ndef make(width=4):\n    return nn.Linear(width, 2)\n")
    assert main(["summary", "--model", f"{net}:make", "--model-arg", "width"]) == 2
    err = capsys.readouterr().err
    assert "--model-arg 'width' is not name=value" in err and "needs --input" not in err, err
    assert main(["summary", "--model", f"{net}:make"]) == 2  # a good reference: --input asked
    assert "--model needs --input C,H,W" in capsys.readouterr().err
