"""A --model-arg value that is no Python literal is told what the factory's parameter takes:
a number for `classes: int` or `classes=10` (it was told to quote it, and `classes='ten'`
then passes text to an int parameter), True/False for a bool, quotes for text or unknown."""

from __future__ import annotations

import importlib.util
import inspect
import shlex

import pytest

from cnnlab.cli import main

NETS = """
from torch import nn


def make_net(width: int = 4, classes=10, act: str = "relu", scale: float = 1.0,
             pretrained: bool = False, *, depth: "int" = 1):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, classes))


def shifted(k: int = -1, scale=-0.5):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 2))


def redefined(classes=3):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, classes))


def redefined(classes: str = "x"):  # the one Python keeps
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 2))


def positional(classes: int = 10, /):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, classes))


class Net(nn.Module):
    def __init__(self, classes: int):
        super().__init__()
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        return self.fc(x.flatten(1))
"""

CASES = [
    ("make_net", "classes=ten", "is not a number, which make_net's classes takes (int, default "
     "10): e.g. --model-arg classes=10", int),
    ("make_net", "width=four", "(int, default 4): e.g. --model-arg width=4", int),
    ("make_net", "depth=deep", "(int, default 1): e.g. --model-arg depth=1", int),
    ("make_net", "scale=big", "(float, default 1.0): e.g. --model-arg scale=1.0", float),
    ("make_net", "pretrained=yes", "is not True or False, which make_net's pretrained takes "
     "(bool, default False): --model-arg pretrained=True or pretrained=False", bool),
    ("Net", "classes=ten", "is not a number, which Net's classes takes (int): e.g. "
     "--model-arg classes=10", int),
    ("shifted", "k=ten", "(int, default -1): e.g. --model-arg k=-1", int),
    ("shifted", "scale=big", "(float, default -0.5): e.g. --model-arg scale=-0.5", float),
    ("redefined", "classes=ten", "is not a Python literal; quote strings so the shell keeps "
     "the quotes: --model-arg \"classes='ten'\"", str),
    ("make_net", "act=gelu", "is not a Python literal; quote strings so the shell keeps the "
     "quotes: --model-arg \"act='gelu'\"", str),
]  # fmt: skip


@pytest.fixture
def nets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nets.py").write_text(NETS)
    spec = importlib.util.spec_from_file_location("nets_advice", tmp_path / "nets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _summary(capsys, factory: str, arg: str) -> tuple[int, list[str]]:
    code = main(
        ["summary", "--model", f"nets.py:{factory}", "--model-arg", arg, "--input", "1,8,8"]
    )
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(("factory", "arg", "said", "kind"), CASES)
def test_the_advice_names_what_the_parameter_takes(nets, capsys, factory, arg, said, kind):
    name = arg.split("=")[0]
    target = getattr(nets, factory)
    parameter = inspect.signature(target).parameters[name]  # Python's own reading
    declared = parameter.annotation
    declared = eval(declared) if isinstance(declared, str) else declared  # noqa: S307
    assert kind in (declared, type(parameter.default))
    code, err = _summary(capsys, factory, arg)
    assert code == 2
    assert len(err) == 1, err
    assert err[0].endswith(said), err[0]
    fix = shlex.split(err[0].rsplit(": ", 1)[1].removeprefix("e.g. "))[:2]  # the advice, run
    if kind is not bool:
        assert main(["summary", "--model", f"nets.py:{factory}", *fix, "--input", "1,8,8"]) == 0


def test_a_module_factory_gets_the_advice_too(nets, capsys):
    code = main(
        ["summary", "--model", "nets:make_net", "--model-arg", "classes=ten", "--input", "1,8,8"]
    )
    assert code == 2
    assert "is not a number, which make_net's classes takes" in capsys.readouterr().err


def test_a_positional_only_parameter_is_not_advised_as_a_keyword(nets, capsys):
    """--model-arg passes keywords; `classes=10` to `def positional(classes, /)` fails."""
    code, err = _summary(capsys, "positional", "classes=ten")
    assert code == 2
    assert "is not a number" not in err[0], err[0]
    assert main(["summary", "--model", "nets.py:positional", "--model-arg", "classes=10",
                 "--input", "1,8,8"]) == 2  # fmt: skip
    assert "positional only" in capsys.readouterr().err


def test_a_decorated_or_inherited_factory_is_read_as_python_reads_it(tmp_path, monkeypatch, capsys):
    """The parameter as inspect.signature sees it: through functools.wraps, and a class's
    __init__ inherited from its base (the source of the class itself declares neither)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "more.py").write_text(
        "import functools\nfrom torch import nn\n\n\n"
        "def logged(f):\n    @functools.wraps(f)\n    def call(*a, **k):\n"
        "        return f(*a, **k)\n    return call\n\n\n"
        "@logged\ndef make(classes: int = 10):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64, classes))\n\n\n"
        "class Base(nn.Module):\n    def __init__(self, classes: int = 10):\n"
        "        super().__init__()\n        self.fc = nn.Linear(64, classes)\n\n"
        "    def forward(self, x):\n        return self.fc(x.flatten(1))\n\n\n"
        "class Child(Base):\n    pass\n"
    )
    for factory in ("make", "Child"):
        code = main(["summary", "--model", f"more.py:{factory}", "--model-arg", "classes=ten",
                     "--input", "1,8,8"])  # fmt: skip
        assert code == 2
        assert f"is not a number, which {factory}'s classes takes (int, default 10)" in (
            capsys.readouterr().err
        )


def test_a_mistyped_parameter_name_gets_the_nearest_one(nets, capsys):
    """'got an unexpected keyword argument 'wdth'' listed the parameters after the whole
    signature with its return annotation; the nearest name is said, and the advice runs."""
    code, err = _summary(capsys, "make_net", "wdth=8")
    assert code == 2 and len(err) == 1, err
    assert err[0].endswith("; did you mean width?"), err[0]
    assert "->" not in err[0]  # the signature's arguments, not its return annotation
    assert main(["summary", "--model", "nets.py:make_net", "--model-arg", "width=8",
                 "--input", "1,8,8"]) == 0  # fmt: skip


@pytest.mark.parametrize("arg", ["act=gelu", "classes=ten"])
def test_the_value_is_named_as_it_was_typed(nets, capsys, arg):
    """`act=gelu` was named `act='gelu'`, the very form the advice then asks for, so the
    message read as refusing what it recommends. Truth: the argument as given."""
    code, err = _summary(capsys, "make_net", arg)
    assert code == 2
    assert f"--model-arg {arg} is not " in err[0], err[0]
