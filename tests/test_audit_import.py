"""A run imported without --data (classes, mean, std and input given): the commands that
need images say how to give them."""

from __future__ import annotations

import pytest
from safetensors.torch import save_file

from cnnlab.cli import main
from cnnlab.errors import RunError
from cnnlab.train.importing import import_run
from cnnlab.train.rundir import load_run
from cnnlab.train.source import parse_model_ref
from tiny_nets import imported_run, tiny_net_source

NETS = tiny_net_source("make")


def test_a_run_without_data_names_the_way_to_give_it_and_that_way_works(tmp_path, capsys):
    """`eval`, `diagnose` and `probe` of such a run said only 'the run records no data set'.
    The message now names --data (diagnose's option, and import's), and diagnose --data
    then runs."""
    nets = tmp_path / "nets.py"
    nets.write_text(NETS)
    source = parse_model_ref(f"{nets}:make")
    save_file(source.build().state_dict(), tmp_path / "w.safetensors")
    out = tmp_path / "run"
    import_run(source, tmp_path / "w.safetensors", out, classes=list("0123456789"),
               mean=[0.3], std=[0.4], input_shape=[1, 8, 8])  # fmt: skip
    with pytest.raises(RunError, match=r"--data") as info:
        load_run(out).dataset("test")
    assert "diagnose" in str(info.value) and "import" in str(info.value)
    assert main(["eval", str(out)]) == 2
    assert "--data" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["diagnose", str(out), "--data", "digits", "--json"]) == 0
    assert '"dead' in capsys.readouterr().out  # the advice works: units measured


def test_the_report_of_an_imported_run_says_it_was_imported_not_that_training_is_unfinished(
    tmp_path,
):
    """An imported run has no epochs by design; its report said 'training has not completed
    an epoch', as for a run stopped early."""
    out = imported_run(tmp_path, NETS, data="digits")
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "has not completed an epoch" not in page
    assert "imported" in page and "trained elsewhere" in page
