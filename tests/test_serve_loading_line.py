"""`cnnlab serve` says which run it is loading before it loads it: a run of a Hugging Face
or MONAI model spends seconds in their imports, and the terminal stayed blank."""

from __future__ import annotations

from cnnlab.cli import serve


def test_the_loading_line_is_out_before_the_run_loads(monkeypatch, capsys):
    seen = []

    def load_run_at(run_dir, data):
        seen.append(capsys.readouterr().out)  # what the user sees while the run loads
        raise KeyboardInterrupt  # stop here: the rest is the tests of serve's start-up

    monkeypatch.setattr(serve, "load_run_at", load_run_at)
    try:
        serve._load("runs/mine")
    except KeyboardInterrupt:
        pass
    assert seen == ["loading runs/mine ...\n"]
