"""A --model-arg literal that does not fit the factory's annotation (`width=16.5`, `width=True`,
`width='8'` for `width: int`) is refused before the factory runs, in one line naming the
argument, the value, the declaration and an example that fits; it reached the factory, whose
own error (torch's 'out_channels must be divisible by groups') said nothing of the argument.
Annotations this cannot check exactly (none, a class, one that does not evaluate) pass."""

from __future__ import annotations

import importlib.util
import inspect
import shlex
from typing import Literal, Optional

import pytest
from pydantic import ConfigDict, TypeAdapter, ValidationError

from cnnlab.cli import main
from cnnlab.errors import SpecError
from cnnlab.train.modelargs import declared_by, fits, parse_model_args
from cnnlab.train.source import parse_model_ref

NETS = """{future}
from typing import TYPE_CHECKING, Literal, Optional

from torch import nn

if TYPE_CHECKING:
    from elsewhere import Unknown


def make_net(width: int = 16, act: Literal["relu", "gelu"] = "relu", scale: float = 1.0,
             sizes: tuple[int, ...] = (8, 16), depth: Optional[int] = None, free=4,
             other: "Unknown | None" = None):
    conv = nn.Conv2d(4, width, 3, groups=4)
    return nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))
"""

REFUSED = [
    ("width=16.5", "width=16.5 (a float) does not fit make_net's width: int = 16; "
     "e.g. --model-arg width=16"),
    ("width=True", "width=True (a bool) does not fit make_net's width: int = 16; "
     "e.g. --model-arg width=16"),
    ("width='8'", "width='8' (a str) does not fit make_net's width: int = 16; "
     "e.g. --model-arg width=8"),
    ("act='gleu'", "act='gleu' (a str) does not fit make_net's act: Literal['relu', 'gelu'] "
     "= 'relu'; e.g. --model-arg \"act='gelu'\""),
    ("scale=True", "scale=True (a bool) does not fit make_net's scale: float = 1.0; "
     "e.g. --model-arg scale=1.0"),
    ("sizes=[8, 16]", "sizes=[8, 16] (a list) does not fit make_net's sizes: tuple[int, ...] "
     "= (8, 16); e.g. --model-arg \"sizes=(8, 16)\""),
    ("depth=2.5", "depth=2.5 (a float) does not fit make_net's depth: Optional[int]; "
     "e.g. --model-arg depth=2"),
]  # fmt: skip


@pytest.fixture(params=["", "from __future__ import annotations"], ids=["types", "text"])
def nets(request, tmp_path, monkeypatch):
    """nets.py in the working directory, its annotations objects or (future import) text."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nets.py").write_text(NETS.format(future=request.param))
    spec = importlib.util.spec_from_file_location("nets_types", tmp_path / "nets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _summary(capsys, *args: str) -> tuple[int, list[str]]:
    argv = ["summary", "--model", "nets.py:make_net", "--input", "4,8,8"]
    code = main([*argv, *(a for arg in args for a in ("--model-arg", arg))])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(("arg", "said"), REFUSED)
def test_a_literal_the_annotation_refuses_is_told_with_an_example(nets, capsys, arg, said):
    name, value = arg.split("=", 1)
    if name == "width":  # what happened before: the factory's own error
        with pytest.raises((ValueError, TypeError)):
            nets.make_net(width=eval(value))  # noqa: S307 - the test's own literal
    code, err = _summary(capsys, arg)
    assert code == 2
    assert err == [f"cnnlab summary: error: --model nets.py:make_net: --model-arg {said}"]
    fix = shlex.split(err[0].rsplit("e.g. ", 1)[1])
    assert _summary(capsys, fix[1]) == (0, [])  # the example runs


@pytest.mark.parametrize("arg", ["width=8", "scale=2", "act='gelu'", "sizes=(4, 8)", "depth=None"])
def test_a_literal_that_fits_builds(nets, capsys, arg):
    assert _summary(capsys, arg) == (0, [])


@pytest.mark.parametrize("arg", ["free='x'", "other=5"])
def test_an_unannotated_or_unknown_annotation_passes_the_value_on(nets, arg):
    name, value = arg.split("=", 1)
    assert parse_model_ref("nets.py:make_net", [arg]).args == ((name, eval(value)),)  # noqa: S307


def test_train_refuses_it_in_one_line_before_any_run(nets, tmp_path, capsys):
    argv = ["train", "--model", "nets.py:make_net", "--model-arg", "width=16.5", "--input",
            "4,8,8", "--data", "digits", "--epochs", "1", "--out", str(tmp_path / "r")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"cnnlab train: error: --model nets.py:make_net: --model-arg {REFUSED[0][1]}"]
    assert not (tmp_path / "r").exists()


def test_the_python_functions_refuse_it(nets):
    with pytest.raises(SpecError, match=r"width=True \(a bool\) does not fit make_net's width"):
        parse_model_ref("nets.py:make_net", ["width=True"])
    declared = declared_by(nets.make_net)
    with pytest.raises(SpecError, match=r"--model-arg width='8' \(a str\) does not fit"):
        parse_model_args("nets.py:make_net", ["width='8'"], declared)
    assert parse_model_args("nets.py:make_net", ["width=8", "scale=1"], declared) == (
        ("width", 8),
        ("scale", 1),
    )


OPTIONAL = [Optional[int], Optional[tuple[int, int]]]  # noqa: UP045 - typing's own spelling
ANNOTATIONS = [int, float, bool, str, None, *OPTIONAL, int | None, float | str, tuple[int, ...],
               tuple[int, float], list[float], tuple, list, tuple[bool, ...]]  # fmt: skip
VALUES = [0, 1, 16, -3, 16.5, 16.0, True, False, "8", "a", None, (1, 2), (1, 2.5), [1, 2], (),
          [], (True,), ("a",), [1.5], b"x", {"a": 1}, (1,)]  # fmt: skip


@pytest.mark.parametrize("annotation", ANNOTATIONS, ids=str)
def test_fits_as_pydantic_strict_validation_does(annotation):
    """pydantic's strict mode is the truth: an int is no bool, an int is a float, a list is
    no tuple."""
    strict = TypeAdapter(annotation, config=ConfigDict(strict=True))
    for value in VALUES:
        try:
            strict.validate_python(value)
            valid = True
        except ValidationError:
            valid = False
        assert fits(value, annotation) is valid, (annotation, value)


def test_a_literal_choice_is_of_its_own_type():
    """Stricter than pydantic: True and 1.0 equal 1, but `--model-arg k=True` is no Literal[1]."""
    assert fits(1, Literal[1, 2]) and fits("a", Literal["a", None]) and fits(None, Literal[None])
    assert fits(True, Literal[1, 2]) is False and fits(1.0, Literal[1]) is False


class Mine:
    pass


@pytest.mark.parametrize("annotation", [Mine, dict[str, int], "Unknown", Mine | int])
def test_what_is_not_checked_exactly_is_not_judged(annotation):
    assert fits("x", annotation) is None


DEFAULTS = """from typing import Literal


def make(width: int = None, act: str = None, size: int = (28, 28),
         mode: Literal["a", "b"] = "auto", depth: int = 2):
    return (width, act, size, mode, depth)
"""


@pytest.mark.parametrize("arg", ["width=None", "act=None", "size=(28, 28)", "mode='auto'"])
def test_a_parameters_own_default_is_taken_whatever_its_annotation(arg, tmp_path, monkeypatch):
    """A factory's default is a value it gives itself (`width: int = None`, implicit Optional):
    passing it is refused by no annotation; another value of that type still is."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "defaults.py").write_text(DEFAULTS)
    name, value = parse_model_ref("defaults.py:make", [arg]).args[0]
    spec = importlib.util.spec_from_file_location("defaults_mod", tmp_path / "defaults.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    default = inspect.signature(module.make).parameters[name].default
    assert value == default and type(value) is type(default)
    with pytest.raises(SpecError, match="does not fit"):
        parse_model_ref("defaults.py:make", [f"{name}=(1, 2, 3)"])
    with pytest.raises(SpecError, match="does not fit make's depth: int = 2"):
        parse_model_ref("defaults.py:make", ["depth=None"])


def test_none_for_text_is_not_told_the_text_none(tmp_path, monkeypatch):
    """None for `act: str` means no value: the example is a text of the type, not 'None',
    which the factory would read as an activation's name."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "acts.py").write_text("def make(act: str):\n    return act\n")
    with pytest.raises(SpecError, match="does not fit make's act: str") as error:
        parse_model_ref("acts.py:make", ["act=None"])
    example = shlex.split(str(error.value).rsplit("e.g. ", 1)[1])
    assert example[0] == "--model-arg" and example[1] != "act='None'"
    assert isinstance(parse_model_ref("acts.py:make", [example[1]]).args[0][1], str)
