"""train --resume of a run stopped in its start-up, before its config.json, advises the
simplest command that works: the one that started it, without --resume; it advised
'start it again with --force', an option that deletes runs and is not needed there
(docs/reliability.md: 'no --force needed'). Truth: the advice followed, which trains the
run to its end."""

from __future__ import annotations

import pytest
import yaml

from cnnlab.cli import main
from cnnlab.train import checkpoint
from tiny_nets import tiny_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models, one thread


class Killed(BaseException):
    """A kill: no handler of cnnlab's runs on it."""


def test_the_advice_is_the_starting_command_without_resume(tmp_path, monkeypatch, capsys):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(10)))
    out = tmp_path / "run"
    start = ["train", str(spec), "--data", "digits", "--out", str(out), "--epochs", "1"]
    start += ["--batch-size", "256", "--precision", "fp32", "--no-tta", "--quiet"]
    original = checkpoint.atomic_write

    def killed_at_config(path, data):
        if path.name == "config.json":
            raise Killed
        return original(path, data)

    monkeypatch.setattr(checkpoint, "atomic_write", killed_at_config)
    with pytest.raises(Killed):
        main(start)
    monkeypatch.undo()
    assert not (out / "config.json").exists() and (out / ".cnnlab.lock").exists()
    capsys.readouterr()

    assert main(["train", "--resume", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nothing to resume" in err
    assert "the command that started it, without --resume" in err
    assert "with --force" not in err and "no --force needed" in err
    assert main(start) == 0  # the advice followed: the starting command as it was
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
