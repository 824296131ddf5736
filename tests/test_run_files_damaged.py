"""A run file damaged after training (cut short, edited by hand) is named with what mends
it: metrics.jsonl's rows are written again by `cnnlab train --resume --out RUN` (the advice
is followed here and the rows read back); config.json, which cnnlab writes whole in one
rename and cannot write again, is to be put back from a copy."""

from __future__ import annotations

import shutil

import pytest

from cnnlab.cli import main
from cnnlab.errors import RunError
from cnnlab.train import TrainConfig, train
from cnnlab.train.run_files import read_config, read_metrics

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("damaged") / "run"
    config = TrainConfig(epochs=2, batch_size=64, precision="fp32", tta=False, seed=0)
    train("lenet5", "digits", out, config)
    return out


def test_metrics_cut_short_names_the_command_that_writes_them_again(finished, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    rows = read_metrics(run)
    metrics = run / "metrics.jsonl"
    metrics.write_text(metrics.read_text()[:-40])  # the last row cut short
    with pytest.raises(RunError) as caught:
        read_metrics(run)
    advice = f"cnnlab train --resume --out {run}"
    assert advice in str(caught.value) and "line 2" in str(caught.value)
    assert main(advice.split()[1:] + ["--quiet"]) == 0  # the advice, followed
    capsys.readouterr()
    again = read_metrics(run)
    assert [r["epoch"] for r in again] == [r["epoch"] for r in rows]
    assert [r["val_acc"] for r in again] == [r["val_acc"] for r in rows]


def test_config_cut_short_is_told_to_be_put_back(finished, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / "config.json").write_text((finished / "config.json").read_text()[:50])
    with pytest.raises(RunError, match="changed after training .*put back a copy"):
        read_config(run)
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "put back a copy of the run's own" in err
    shutil.copy(finished / "config.json", run / "config.json")  # the advice, followed
    assert main(["eval", str(run), "--json"]) == 0


def test_a_config_that_cannot_be_read_is_not_called_changed(tmp_path):
    """A directory in config.json's place is a read error, not an edit to put back."""
    (tmp_path / "config.json").mkdir()
    with pytest.raises(RunError, match=r"cannot read .*config.json: Is a directory") as caught:
        read_config(tmp_path)
    assert "changed after training" not in str(caught.value)
