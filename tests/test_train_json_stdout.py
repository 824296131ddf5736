"""`cnnlab train --json` writes one JSON document to stdout (`> result.json`, `| jq`): the
per-epoch lines go to stderr. Truth: Python's json parser on stdout, and the run's own
metrics.jsonl for the epochs the lines report."""

import json
import textwrap

from cnnlab.cli import main

NET = """
from torch import nn

def make():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 10))
"""


def test_train_json_keeps_stdout_one_document(tmp_path, capsys):
    (tmp_path / "net.py").write_text(textwrap.dedent(NET))
    out = tmp_path / "run"
    args = ["train", "--model", f"{tmp_path / 'net.py'}:make", "--data", "digits", "--epochs",
            "2", "--out", str(out), "--json"]  # fmt: skip
    assert main(args) == 0
    said = capsys.readouterr()
    result = json.loads(said.out)  # the whole of stdout
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert result["epochs"] == len(rows) == 2
    assert [line.split()[1] for line in said.err.splitlines() if line.startswith("epoch ")] == [
        "1/2", "2/2",
    ]  # fmt: skip
