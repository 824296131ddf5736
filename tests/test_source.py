"""Model sources: `file.py:factory` / `module:factory` with literal arguments, and specs.

Every factory here is a real file written to tmp_path and run by the code under test; the
truth is torch itself (the model built equals the one the factory makes by direct call).
"""

import json
import re
import sys
import textwrap

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from cnnlab.errors import CnnlabError, RunError, SpecError
from cnnlab.train.source import (
    ACCEPT_CHANGED_ENV,
    ModelSource,
    file_sha256,
    parse_model_args,
    parse_model_ref,
)

NETS = """
import torch
from torch import nn

def make_net(width=4, classes=10, act="relu", sizes=(1, 2)):
    acts = {"relu": nn.ReLU(), "gelu": nn.GELU()}
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), acts[act], nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(width, classes),
    )

def needs_depth(depth, width=4):
    return nn.Sequential(*[nn.Conv2d(1, 1, 1) for _ in range(depth)])

def broken():
    return 1 / 0

def not_a_module():
    return {"conv": 1}

def exits():
    raise SystemExit(3)

NOT_CALLABLE = 5
"""


def write(tmp_path, text=NETS, name="nets.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_file_reference_builds_the_factory_model_with_literal_args(tmp_path):
    path = write(tmp_path)
    source = parse_model_ref(f"{path}:make_net", ["width=6", "act='gelu'", "sizes=(3, 4)"])
    assert source.kind == "code" and source.factory_name == "make_net"
    assert source.args == (("width", 6), ("act", "gelu"), ("sizes", (3, 4)))
    model = source.build()
    assert isinstance(model[1], nn.GELU)
    assert model[0].weight.shape == (6, 1, 3, 3)  # torch's own shape of Conv2d(1, 6, 3)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_relative_file_reference_is_recorded_with_its_absolute_path(tmp_path, monkeypatch):
    write(tmp_path)
    monkeypatch.chdir(tmp_path)
    source = parse_model_ref("nets.py:make_net", [])
    assert source.reference == f"{tmp_path.resolve() / 'nets.py'}:make_net"
    monkeypatch.chdir("/")  # another command run from elsewhere still finds the file
    assert isinstance(source.build(), nn.Module)


def test_module_reference_imports_from_the_python_path(tmp_path, monkeypatch):
    package = tmp_path / "mynets"
    package.mkdir()
    (package / "__init__.py").write_text("")
    write(package, name="small.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    source = parse_model_ref("mynets.small:make_net", ["classes=3"])
    assert source.file == (package / "small.py").resolve()
    assert source.sha256 == file_sha256(package / "small.py")
    assert source.build()[-1].out_features == 3
    sys.modules.pop("mynets.small", None)
    sys.modules.pop("mynets", None)


def test_factory_file_can_import_its_neighbour(tmp_path):
    write(tmp_path, "from torch import nn\nWIDTH = 5\n", name="helper_mod_x.py")
    write(tmp_path, "from helper_mod_x import WIDTH\nfrom torch import nn\n"
          "def make():\n    return nn.Linear(WIDTH, 2)\n", name="uses.py")  # fmt: skip
    assert parse_model_ref(f"{tmp_path / 'uses.py'}:make").build().in_features == 5
    sys.modules.pop("helper_mod_x", None)


def test_record_round_trips_through_json(tmp_path):
    path = write(tmp_path)
    source = parse_model_ref(f"{path}:make_net", ["sizes=(3, 4)", "width=2"])
    record = json.loads(json.dumps(source.to_record()))
    assert record["sha256"] == file_sha256(path) and record["args"] == {
        "sizes": "(3, 4)",
        "width": "2",
    }
    again = ModelSource.from_record(record, tmp_path)
    assert again.args == source.args  # the tuple stays a tuple
    torch.manual_seed(0)
    a = source.build()
    torch.manual_seed(0)
    b = again.build()
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)


def test_changed_code_is_an_error_naming_the_file_unless_accepted(tmp_path, monkeypatch):
    path = write(tmp_path)
    record = parse_model_ref(f"{path}:make_net", []).to_record()
    path.write_text(NETS.replace("nn.ReLU()", "nn.Tanh()"))  # same weights' shapes
    monkeypatch.delenv(ACCEPT_CHANGED_ENV, raising=False)
    with pytest.raises(RunError, match=rf"{path}.*changed since.*{ACCEPT_CHANGED_ENV}=1"):
        ModelSource.from_record(record, tmp_path)
    accepted = ModelSource.from_record(record, tmp_path, accept_changed=True)
    assert accepted.sha256 == file_sha256(path) != record["sha256"]
    monkeypatch.setenv(ACCEPT_CHANGED_ENV, "1")
    assert ModelSource.from_record(record, tmp_path).sha256 == accepted.sha256


def test_missing_code_file_on_reopen_names_it(tmp_path):
    path = write(tmp_path)
    record = parse_model_ref(f"{path}:make_net", []).to_record()
    path.unlink()
    with pytest.raises(RunError, match=rf"{path}.*missing"):
        ModelSource.from_record(record, tmp_path)


@pytest.mark.parametrize(
    "record",
    [None, {"kind": "zip"}, {"kind": "code"}, {"kind": "code", "reference": "a:b", "args": 3}],
)
def test_malformed_record_is_a_run_error(tmp_path, record):
    with pytest.raises(RunError, match="config.json"):
        ModelSource.from_record(record, tmp_path)


def test_spec_reference_builds_the_preset():
    source = parse_model_ref("fast", [])
    assert source.kind == "spec" and source.name == source.spec.name
    assert isinstance(source.build(), nn.Module)
    assert source.to_record()["kind"] == "spec"


BAD_REFS = [
    # (reference template, args, words the one-line message must hold)
    ("{d}/absent.py:make_net", [], ["absent.py", "no such file"]),
    ("{d}/nets.py:nope", [], ["nets.py:nope", "no 'nope'", "make_net"]),
    ("{d}/nets.py:broken", [], ["nets.py:broken", "ZeroDivisionError", "division by zero"]),
    ("{d}/nets.py:not_a_module", [], ["not_a_module returned dict", "nn.Module"]),
    ("{d}/nets.py:needs_depth", [], ["needs_depth", "depth", "--model-arg depth=VALUE"]),
    ("{d}/nets.py:make_net", ["height=3"], ["make_net", "height"]),
    ("{d}/nets.py:NOT_CALLABLE", [], ["NOT_CALLABLE", "not callable"]),
    ("{d}/nets.py:exits", [], ["exits", "SystemExit"]),
    ("{d}/nets.py", [], ["nets.py", "name the factory after a colon"]),
    ("{d}/nets.py:make_net", ["width"], ["'width'", "name=value"]),
    ("{d}/nets.py:make_net", ["act=gelu"], ["act='gelu'", "not a Python literal"]),
    ("{d}/nets.py:make_net", ["width=1", "width=2"], ["width", "twice"]),
    ("{d}/nets.py:make_net", ["width=" + "[" * 200_000], ["width", "longer"]),
    ("{d}/syntax.py:f", [], ["syntax.py", "SyntaxError"]),
    ("{d}/:f", [], ["is not a regular file"]),
    ("no_such_module_xyz.sub:f", [], ["no_such_module_xyz", "cannot find module"]),
    ("{d}/notes.txt:f", [], ["notes.txt", "not a Python"]),
    ("fast", ["width=2"], ["--model-arg applies to code references"]),
]


@pytest.mark.parametrize(("template", "args", "words"), BAD_REFS)
def test_bad_reference_is_one_line_naming_reference_and_problem(tmp_path, template, args, words):
    write(tmp_path)
    write(tmp_path, "def f(:\n", name="syntax.py")
    write(tmp_path, "hello", name="notes.txt")
    ref = template.format(d=tmp_path)
    with pytest.raises(SpecError) as info:
        parse_model_ref(ref, args).build()
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


@given(
    st.dictionaries(
        st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=8),
            lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner),
            max_leaves=6,
        ),
        max_size=4,
    )
)
def test_args_parse_back_to_the_values_written(values):
    """Property: `name=repr(value)` parses to `value` (Python's own repr is the truth)."""
    items = [f"{k}={v!r}" for k, v in values.items()]
    assert dict(parse_model_args("f.py:g", items)) == values


def test_errors_are_cnnlab_errors():
    assert issubclass(SpecError, CnnlabError) and issubclass(RunError, CnnlabError)


@pytest.mark.parametrize(
    ("now", "words"),
    [
        (NETS.replace('acts = {"relu"', 'raise ValueError("no width")\n    acts = {"relu"'),
         r"make_net\(\) raised ValueError: no width"),
        ("import no_such_module_here\n", "loading .* raised ModuleNotFoundError"),
        ("x = 1\n", r"\S*nets.py defines no 'make_net'"),
    ],
)  # fmt: skip
def test_reopened_code_that_now_fails_names_the_run_and_its_code_not_model_option(
    tmp_path, now, words
):
    """`cnnlab eval RUN` gives no --model: an error from the run's recorded code names the
    run and the reference recorded, not a `--model REF` the user never typed."""
    path = write(tmp_path)
    record = parse_model_ref(f"{path}:make_net", []).to_record()
    path.write_text(textwrap.dedent(now))
    run = tmp_path / "run"
    again = ModelSource.from_record(record, run, accept_changed=True)
    with pytest.raises(
        SpecError, match="^" + re.escape(f"{run}'s model code {path}:make_net: ") + words
    ) as got:
        again.build()
    assert "--model" not in str(got.value)


def test_reopened_module_code_names_its_file(tmp_path, monkeypatch):
    write(tmp_path, name="reopened_nets.py")
    monkeypatch.chdir(tmp_path)
    record = parse_model_ref("reopened_nets:make_net", []).to_record()
    (tmp_path / "reopened_nets.py").write_text("def make_net():\n    return 1 / 0\n")
    again = ModelSource.from_record(record, tmp_path / "run", accept_changed=True)
    with pytest.raises(
        SpecError,
        match=r"'s model code reopened_nets:make_net \(\S*reopened_nets.py\): make_net\(\) "
        r"raised ZeroDivisionError",
    ):
        again.build()
    sys.modules.pop("reopened_nets", None)
