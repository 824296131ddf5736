"""Layer names are the user's (a ModuleDict key may hold any string but a dot): `cnnlab
summary` prints them as written. rich reads "[...]" in a cell as markup: "head[/b]" raised
rich's MarkupError (a traceback, exit 1), "x[bold]y" printed as "xy". Truth: the names
model.named_modules() gives, found verbatim in the output, and exit code 0."""

from __future__ import annotations

import pytest

from cnnlab.cli import main

NET = """
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.parts = nn.ModuleDict({{"{first}": nn.Conv2d(1, 4, 3), "{last}": nn.Flatten()}})

    def forward(self, x):
        return self.parts["{last}"](self.parts["{first}"](x))


def make():
    return Net()
"""

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("first, last", [("x[bold]y", "head[/b]"), ("x[bold]y", "[i]head")])
def test_names_with_brackets_print_as_written(tmp_path, capsys, first, last):
    path = tmp_path / "net.py"
    path.write_text(NET.format(first=first, last=last))
    code = main(["summary", "--model", f"{path}:make", "--input", "1,8,8"])
    out = capsys.readouterr().out
    assert code == 0
    rows = [line for line in out.splitlines() if line.startswith("│")]
    assert [r.split("│")[1].strip() for r in rows] == [f"parts.{first}", f"parts.{last}"], out
    assert f"layer parts.{last}:" in out  # the lint names it as the table does
