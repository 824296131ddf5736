"""`cnnlab lab` on the command line. What it prints: a quick lab's table says its verdicts are a
smoke run, as its page does, since a learner reads the terminal first (a quick 'does not hold'
on 2,000 images and 3 epochs is not the notes being wrong). What it refuses, the way every
command does (one line on stderr, exit 2, no traceback, before any experiment runs): a bad
--threads or --out, --quick with more than one seed (the quick lab is one seed), a --rerun of an
experiment --only leaves out, an unknown experiment. --list gives the experiments in page
order."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from cnnlab.cli import main
from cnnlab.cli.lab import _print_table
from cnnlab.lab import experiments, load_results

STORED = Path(__file__).parent / "data" / "lab_full_results.json"


def printed(quick: bool, tmp_path: Path) -> str:
    data = json.loads(STORED.read_text())
    data["quick"] = quick
    (tmp_path / "results.json").write_text(json.dumps(data))
    console = Console(record=True, width=200)
    _print_table(console, experiments(), load_results(tmp_path))
    return console.export_text()


def test_a_quick_table_says_it_is_a_smoke_run(tmp_path):
    assert "smoke run, not evidence" in printed(True, tmp_path)
    shutil.rmtree(tmp_path)
    tmp_path.mkdir()
    assert "smoke run" not in printed(False, tmp_path)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--threads", "0"], "--threads"),
        (["--threads", "-2"], "--threads"),
        (["--out", "{file}"], "not a directory"),
    ],
)
def test_a_bad_option_is_one_line_and_exit_2(args, says, tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a lab")
    args = [a.format(file=a_file) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "lab")]
    code = main(["lab", "--quick", "--only", "floor", *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and says in err
    assert len(err.strip().splitlines()) == 1, err
    assert a_file.read_text() == "not a lab"


def test_quick_with_more_seeds_is_refused(tmp_path, capsys):
    code = main(["lab", "--quick", "--seeds", "3", "--only", "floor", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "--seeds" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "results.json").exists()


def test_quick_with_one_seed_runs(tmp_path, capsys):
    assert main(["lab", "--quick", "--seeds", "1", "--only", "floor", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "results.json").exists()


def test_rerun_of_an_experiment_only_leaves_out_is_refused(tmp_path, capsys):
    """`--only floor --rerun spatial` ran floor alone and never spatial, without a word."""
    code = main(["lab", "--quick", "--only", "floor", "--rerun", "spatial", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "--rerun spatial" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "results.json").exists()


def test_cli_refuses_an_unknown_experiment_with_one_line(capsys, tmp_path):
    assert main(["lab", "--only", "nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no experiment named 'nope'" in err
    assert not (tmp_path / "results.json").exists()


def test_cli_lists_every_experiment_in_page_order(capsys):
    assert main(["lab", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [e.name for e in experiments()]


@pytest.mark.parametrize("args", [["--seeds", "0"], ["--resume"]])
def test_a_refusal_before_any_experiment_prints_no_progress_bar(args, tmp_path, capsys):
    """A refusal before any experiment ran (--seeds 0; a results.json of the quick lab resumed
    as the full one) printed an empty 'lab 0:00:00' bar above its one line."""
    data = json.loads(STORED.read_text())
    data["quick"] = True
    (tmp_path / "results.json").write_text(json.dumps(data))
    assert main(["lab", "--only", "floor", "--out", str(tmp_path), *args]) == 2
    out, err = capsys.readouterr()
    assert out == "", out
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_piped_output_says_each_experiment_as_it_ends(tmp_path, capsys, monkeypatch):
    """Piped (no terminal), rich draws the bars once, when the lab ends: a log of the full lab
    said nothing for half an hour. Each experiment's line is printed when it ends, before the
    next one starts (read from the captured output inside the run)."""
    import cnnlab.lab as lab
    from cnnlab.lab.runner import LabResults

    seen = []

    def run_lab(chosen, out, *, on_start, on_done, **_):
        results = LabResults(True, [0])
        for e in chosen:
            on_start(e)
            entry = {"verdict": {"outcome": "holds", "numbers": {}, "meaning": "m"},
                     "measurements": {}, "seconds": 1.25}  # fmt: skip
            on_done(e, entry, None)
            seen.append(capsys.readouterr().out)
            results.experiments[e.name] = entry
        return results

    monkeypatch.setattr(lab, "run_lab", run_lab)
    monkeypatch.setattr(lab, "write_page", lambda out, chosen, results: tmp_path / "lab.html")
    assert main(["lab", "--quick", "--only", "floor", "softmax", "--out", str(tmp_path)]) == 0
    assert "floor: holds, 1.2 s" in seen[0] and "softmax" not in seen[0], seen
    assert "softmax: holds, 1.2 s" in seen[1], seen
