"""The `cnnlab` dispatcher: every command registers, bad input is one line and exit 2."""

import json
import subprocess
import sys

import pytest

from cnnlab.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cnnlab.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("data", "summary"):
        assert command in out


def test_data_json_reports_both_splits_of_digits(capsys):
    assert main(["data", "digits", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    # scikit-learn ships 1,797 digits; cnnlab holds out a fixed stratified 20% as the test split
    assert info["train"]["images"] + info["test"]["images"] == 1797
    assert info["train"]["shape"] == [1, 8, 8]
    assert sum(info["train"]["class_counts"]) == info["train"]["images"]


def test_library_error_is_one_line_and_exit_2():
    result = run_cli("data", "no-such-set")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown data set 'no-such-set'" in lines[0]
    assert "Traceback" not in result.stderr


def test_unknown_command_exits_2():
    result = run_cli("frobnicate")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_data_table_shows_mean_and_std_to_four_places(capsys, monkeypatch):
    """Both splits read alike: 0.2860, not 0.286 beside 0.2868 (the JSON's numbers, padded)."""
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["data", "digits"]) == 0
    out = capsys.readouterr().out
    assert main(["data", "digits", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    for split in ("train", "test"):
        for key in ("mean", "std"):
            assert f"{info[split][key][0]:.4f}" in out
    assert "[0." not in out  # no Python list repr in the table


def test_summary_help_says_what_it_prints_not_the_usage_again(capsys):
    with pytest.raises(SystemExit):
        main(["summary", "--help"])
    out = capsys.readouterr().out
    assert "`cnnlab summary" not in out and "receptive field" in out


NET = """
from torch import nn


def make(width=4):
    return nn.Sequential(nn.Conv2d(1, width, 3), nn.ReLU(), nn.Flatten(), nn.Linear(width * 36, 2))
"""


def test_summary_of_a_model_from_code(tmp_path, capsys):
    """`cnnlab summary --model file.py:factory --input C,H,W`: the same facts as the library
    gives for the module itself; without --input, one line saying why it is needed."""
    import torch.nn as nn

    import cnnlab

    (tmp_path / "net.py").write_text(NET)
    ref = f"{tmp_path / 'net.py'}:make"
    assert main(["summary", "--model", ref, "--model-arg", "width=6", "--input", "1,8,8",
                 "--json"]) == 0  # fmt: skip
    shown = json.loads(capsys.readouterr().out)
    model = nn.Sequential(nn.Conv2d(1, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(216, 2))
    assert shown["total_params"] == sum(p.numel() for p in model.parameters()) == 494
    assert shown["total_macs"] == cnnlab.summary(model, (1, 8, 8)).total_macs
    assert main(["summary", "--model", ref]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_summary_refuses_model_arg_with_a_spec(capsys):
    """'summary fast --model-arg x=1' drew the spec as written, the option ignored without a
    word: --model-arg is for the --model factory."""
    assert main(["summary", "fast", "--model-arg", "x=1"]) == 2
    out, err = capsys.readouterr()
    assert "--model-arg is for the --model factory" in err and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
