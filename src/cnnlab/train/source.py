"""Where a run's model comes from: a spec (a file or a preset) or the user's Python code.

    source = parse_model_ref("nets/tiny.py:make_net", ["width=16", "act='gelu'"])
    model = source.build()                      # calls make_net(width=16, act="gelu")
    record = source.to_record()                 # JSON for config.json["model"]
    again = ModelSource.from_record(record, run_dir)   # RunError if the file changed since

A code reference is `path/to/file.py:factory` or `package.module:factory`; each
`--model-arg name=value` is one keyword argument whose value is a Python literal
(`ast.literal_eval`: numbers, quoted strings, tuples, lists, dicts, True/False/None).
Strings need quotes the shell keeps: `--model-arg "act='gelu'"`.

**Loading a model from code runs that code** (the file's top level, then the factory) with
the user's rights, as `python file.py` would: open only runs whose code you trust. The
weights themselves stay safetensors, which cannot run code.

A run records the reference, the arguments and the SHA-256 of the file that defined the
factory. Reopening a run whose file has changed since training is a `RunError` naming the
file, not a warning: a changed file may build another network that the weights still fit
(an activation swapped), and predictions would change with no word. To accept the code as
it is now, pass `accept_changed=True` or set the environment variable
`CNNLAB_ACCEPT_CHANGED_CODE=1` (which every command honours); the weights' shapes are
still checked against the model built.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.design.build import build as build_spec
from cnnlab.design.spec import load_spec
from cnnlab.errors import RunError, SpecError
from cnnlab.train.lazy import check_materialized, materialize
from cnnlab.train.modelargs import (
    Declared,
    declared_by,
    literal,
    parse_model_args,
    unlike_defaults,
)

ACCEPT_CHANGED_ENV = "CNNLAB_ACCEPT_CHANGED_CODE"
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_MODULE = re.compile(rf"{_IDENT}(\.{_IDENT})*")
_CODE_REF = re.compile(rf"(?P<where>.+):(?P<name>{_IDENT})")
# a factory's named parameters with their defaults, and whether it takes **kwargs
Parameters = tuple[dict[str, Any], bool]
_NONE = inspect.Parameter.empty  # a parameter's default when it has none


@dataclass(frozen=True)
class ModelSource:
    """A model's origin: `kind` "spec" (`spec` holds the loaded Spec) or "code" (`reference`
    is `file.py:factory` or `module:factory`, `args` the keyword arguments in order,
    `file` the resolved file that defines the factory, `sha256` that file's hash, and
    `input_shape` the (C, H, W) images the code takes, where the user gave it: the data is
    converted to it, as to a spec's input; None: the data's own)."""

    kind: str
    reference: str
    args: tuple[tuple[str, Any], ...] = ()
    file: Path | None = None
    sha256: str | None = None
    spec: Any = field(default=None, repr=False, compare=False)
    input_shape: tuple[int, int, int] | None = None
    origin: str = field(default="", repr=False, compare=False)

    @property
    def label(self) -> str:
        """How errors name this source: `--model REF` as the user gave it, or for a run
        reopened from its record, the run's recorded code (no --model was given then)."""
        return self.origin or f"--model {self.reference}"

    @property
    def factory_name(self) -> str:
        return self.reference.rsplit(":", 1)[1] if self.kind == "code" else ""

    @property
    def name(self) -> str:
        """A short name for tables and reports: the spec's name or the factory's."""
        return self.spec.name if self.kind == "spec" else self.factory_name

    def build(self, input_shape=None) -> nn.Module:
        """A fresh model: `build(spec)`, or the factory called with `args` (its code runs).
        Lazy layers (nn.LazyConv2d, nn.LazyLinear, ...) take their shapes from `input_shape`
        (C, H, W) as training gives them (`lazy.materialize`); without one nothing can, and
        a lazy model is a SpecError (`lazy.check_materialized`).

        SpecError naming the reference when the code cannot be loaded, the factory raises,
        its arguments do not fit, or it returns something that is not an `nn.Module`."""
        model = self.build_with_parameters()[0]
        if input_shape is None:
            check_materialized(model, f"{self.label}:")
        else:
            materialize(model, tuple(input_shape), self.label)
        return model

    def build_with_parameters(self) -> tuple[nn.Module, Parameters | None]:
        """The model as its factory returns it, lazy layers still lazy (training gives them
        the data's shape: `fit.check_fit`), and the factory's parameters (None for a spec, or
        a factory without a signature): what `outputs_fix` takes to name the argument that
        sets the class count, without loading the code again."""
        if self.kind == "spec":
            return build_spec(self.spec), None
        factory = _load_factory(self.reference, self.file, self.label)
        kwargs = dict(self.args)
        _check_signature(self.reference, factory, kwargs, self.label)
        params = _parameters(factory)
        try:
            model = factory(**kwargs)
        except (Exception, SystemExit) as error:  # the user's code: any error is theirs
            raise SpecError(
                f"{self.label}: {self.factory_name}({_call_text(self.args)}) "
                f"raised {type(error).__name__}: {_one_line(error)}{_no_cuda(error)}"
                + unlike_defaults(self.factory_name, self.args, declared_by(factory))
            ) from error
        if not isinstance(model, nn.Module):
            raise SpecError(
                f"{self.label}: {self.factory_name} returned "
                f"{type(model).__name__}, not a torch.nn.Module; return the network itself"
            )
        return model, params

    def to_record(self) -> dict[str, Any]:
        """JSON-ready description for config.json; args are kept as literal source text
        (`repr`), so a tuple comes back a tuple."""
        if self.kind == "spec":
            return {"kind": "spec", "reference": self.reference, "name": self.spec.name}
        record = {
            "kind": "code",
            "reference": self.reference,
            "args": {k: repr(v) for k, v in self.args},
            "file": str(self.file),
            "sha256": self.sha256,
        }
        if self.input_shape is not None:  # only when given: older records stay as they were
            record["input"] = list(self.input_shape)
        return record

    @classmethod
    def from_record(
        cls, record: dict[str, Any], run_dir: str | Path, accept_changed: bool | None = None
    ) -> ModelSource:
        """The source a run was trained from. A spec run reads `run_dir/spec.yaml`; a code run
        checks that its file still hashes as recorded (RunError naming the file and the way to
        accept it otherwise; `accept_changed=None` reads $CNNLAB_ACCEPT_CHANGED_CODE)."""
        run_dir = Path(run_dir)
        where = run_dir / "config.json"
        if not isinstance(record, dict) or record.get("kind") not in ("spec", "code"):
            raise RunError(f"{where}: 'model' must be a record with kind 'spec' or 'code'")
        if record["kind"] == "spec":
            spec = load_spec(run_dir / "spec.yaml")
            return cls("spec", str(record.get("reference", "spec.yaml")), spec=spec)
        try:
            reference, file, sha = record["reference"], Path(record["file"]), record["sha256"]
            args = tuple((k, literal(k, v, reference)) for k, v in record["args"].items())
            shape = record.get("input")
            shape = None if shape is None else tuple(int(n) for n in shape)
        except (KeyError, TypeError, AttributeError, ValueError, SpecError) as error:
            raise RunError(f"{where}: malformed 'model' record ({error})") from error
        if not file.is_file():  # moved, or the run copied to another machine
            raise RunError(
                f"{run_dir}: its model code {file} ({reference}) is missing (a run records it "
                f"by its absolute path); put the file back there, or link it there (ln -s "
                f"NEW_PLACE {file}): its SHA-256 is checked"
            )
        now = file_sha256(file)
        if now != sha and not _accepting(accept_changed):
            made = "imported" if _imported(run_dir) else "trained"
            raise RunError(
                f"{run_dir}: {file} has changed since the run was {made} (sha256 {sha[:12]} "
                f"then, {now[:12]} now), so {reference} may build another network; restore "
                f"the file, or set {ACCEPT_CHANGED_ENV}=1 to use the code as it is now"
            )
        origin = f"{run_dir}'s model code {code_name(reference, file)}"
        return cls("code", reference, args, file, now, input_shape=shape, origin=origin)


def _imported(run_dir: Path) -> bool:
    """Whether the run's config.json records that `cnnlab import` made it (False when it
    does not read: the caller's own message stands then)."""
    try:
        return "imported" in json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError, TypeError):
        return False


def code_name(reference: str, file: object) -> str:
    """'nets.py:make_net' as it is; a module reference with its file, which it does not
    name: 'pkg.nets:make_net (/path/pkg/nets.py)'."""
    return reference if reference.startswith(f"{file}:") else f"{reference} ({file})"


def parse_model_ref(ref: str, args: list[str] | tuple[str, ...] = ()) -> ModelSource:
    """`--model REF` and its `--model-arg name=value` options as a ModelSource.

    REF is `file.py:factory`, `package.module:factory`, or else a spec file or preset name
    (which takes no arguments). SpecError naming REF on any malformed part."""
    ref = str(ref).strip()
    match = _CODE_REF.fullmatch(ref)
    if match is None:
        if ref.endswith(".py") or (":" in ref and not Path(ref).exists()):
            raise SpecError(
                f"--model {ref!r}: name the factory after a colon, e.g. "
                f"{ref.split(':')[0] or 'nets.py'}:make_net (a function returning an nn.Module)"
            )
        if args:
            raise SpecError(f"--model-arg applies to code references (file.py:factory), not {ref}")
        try:
            return ModelSource("spec", ref, spec=load_spec(ref))
        except SpecError as error:
            code = Path(f"{ref}.py").expanduser()
            if Path(ref).expanduser().exists() or not code.is_file():  # a spec's own fault
                raise
            raise SpecError(
                f"{error}; for the model in {code}, name its factory after a colon: --model "
                f"{code}:FACTORY (FACTORY: the function in it that returns your nn.Module)"
            ) from None
    where = match["where"]
    if where.endswith(".py") or "/" in where or os.sep in where:
        file = _code_file(ref, Path(where).expanduser())
    elif _MODULE.fullmatch(where):
        file = _module_file(ref, where)
    else:
        raise SpecError(
            f"--model {ref!r}: {where!r} is neither a .py file nor a dotted module name"
        )
    canonical = _canonical(ref, where, file)
    parsed = parse_model_args(ref, args, _declarations(canonical, file))
    return ModelSource("code", canonical, parsed, file, file_sha256(file))


def _declarations(reference: str, file: Path) -> Declared:
    """What each of the factory's parameters takes (`modelargs.declared_by`), to check the
    --model-arg values against and advise on them. The factory is loaded (its code runs, as
    the command would run it) once, at the first name asked; every name None when it cannot
    be."""

    @functools.cache
    def declared() -> Declared:
        try:
            return declared_by(_load_factory(reference, file, f"--model {reference}"))
        except SpecError:
            return lambda name: None

    return lambda name: declared()(name)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _no_cuda(error: BaseException) -> str:
    """The fix when a factory written for a GPU (`Net().cuda()`) runs where there is none:
    torch's 'Torch not compiled with CUDA enabled' alone did not say it."""
    if "cuda" not in str(error).lower() or torch.cuda.is_available():
        return ""
    return (
        "; this machine has no CUDA device: return the model on the CPU (training moves it "
        "to a GPU where there is one)"
    )


def _code_file(ref: str, path: Path) -> Path:
    if not path.exists():
        raise SpecError(f"--model {ref}: no such file {path}")
    if not path.is_file():
        raise SpecError(f"--model {ref}: {path} is not a regular file")
    if path.suffix != ".py":
        raise SpecError(f"--model {ref}: {path} is not a Python (.py) file")
    return path.resolve()


def _module_file(ref: str, module: str) -> Path:
    """The file of `module`, found as `python -m` finds it: the working directory first."""
    try:
        with _on_path(Path.cwd()):
            found = importlib.util.find_spec(module)
    except (ImportError, ValueError) as error:  # a parent package that is missing or broken
        raise SpecError(f"--model {ref}: cannot find module {module} ({error})") from None
    except Exception as error:  # a parent package whose __init__ raised: the user's code
        raise SpecError(
            f"--model {ref}: importing {module}'s package raised "
            f"{type(error).__name__}: {_one_line(error)}"
        ) from error
    instead = f"give a file instead (path/to/{module.rsplit('.', 1)[-1]}.py:factory)"
    if found is None:
        raise SpecError(f"--model {ref}: no module {module} on the Python path; {instead}")
    if not found.origin or not Path(found.origin).is_file():  # `os`: it was "no module os"
        what = {"built-in": "built in", "frozen": "frozen", None: "a namespace package"}.get(
            found.origin, f"loaded from {found.origin}"
        )
        raise SpecError(
            f"--model {ref}: module {module} is {what}, not a .py file whose hash a run can "
            f"record; {instead}"
        )
    return Path(found.origin).resolve()


def _canonical(ref: str, where: str, file: Path) -> str:
    """A file reference is stored with its absolute path, so other directories find it."""
    if where.endswith(".py") or "/" in where or os.sep in where:
        return f"{file}:{ref.rsplit(':', 1)[1]}"
    return ref


def _load_factory(reference: str, file: Path | None, who: str) -> Any:
    """Run the module that defines the factory and return the factory (its code runs here);
    errors begin with `who` (ModelSource.label)."""
    where, name = reference.rsplit(":", 1)
    try:
        if _MODULE.fullmatch(where) and not where.endswith(".py"):
            with _on_path(_package_root(where, file)):  # from any directory, as at training
                module = importlib.import_module(where)
        else:
            module = _exec_file(file)
    except (Exception, SystemExit) as error:  # the user's code: a syntax or import error
        raise SpecError(
            f"{who}: loading {file} raised {type(error).__name__}: {_one_line(error)}"
        ) from error
    factory = getattr(module, name, None)
    if factory is None:
        public = sorted(n for n, v in vars(module).items() if callable(v) and n[0] != "_")
        raise SpecError(
            f"{who}: {file} defines no {name!r}"
            + (f" (callables there: {', '.join(public[:8])})" if public else "")
        )
    if not callable(factory):
        raise SpecError(f"{who}: {name} is a {type(factory).__name__}, not callable")
    return factory


def _exec_file(file: Path) -> Any:
    """Import `file` as a fresh module; its directory is on sys.path while it runs, so it
    can import its neighbours."""
    digest = hashlib.sha256(str(file).encode()).hexdigest()[:12]
    module_name = f"cnnlab_user_model_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look a module up by name
    try:
        with _on_path(file.parent):
            spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def _package_root(module: str, file: Path | None) -> Path | None:
    """The directory `module` is imported from, given its file (`a/b.py` for `a.b` ->
    the directory holding `a/`); None without a file."""
    if file is None:
        return None
    depth = module.count(".") + (file.name == "__init__.py")
    return file.parents[depth] if depth < len(file.parents) else None


@contextmanager
def _on_path(directory: Path | None) -> Iterator[None]:
    """`directory` first on sys.path for the block (nothing when None)."""
    entry = str(directory) if directory is not None else None
    if entry is None or entry in sys.path:
        yield
        return
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        sys.path.remove(entry)


def _check_signature(reference: str, factory: Any, kwargs: dict[str, Any], who: str) -> None:
    """Arguments missing or unknown to the factory, said before calling it."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return  # a builtin or C callable: let the call itself say
    try:
        signature.bind(**kwargs)
    except TypeError as error:
        name = reference.rsplit(":", 1)[1]
        needed = [
            p.name
            for p in signature.parameters.values()
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        missing = [n for n in needed if n not in kwargs]
        unknown = [n for n in kwargs if n not in signature.parameters]
        near = (
            difflib.get_close_matches(unknown[0], list(signature.parameters), n=1)
            if unknown
            else []
        )
        fix = (
            " give " + " ".join(f"--model-arg {n}=VALUE" for n in missing)
            if missing
            else f" its parameters are ({', '.join(signature.parameters)})"
        ) + (f"; did you mean {near[0]}?" if near else "")
        shown = signature.replace(return_annotation=inspect.Signature.empty)  # the arguments
        raise SpecError(f"{who}: {name}{shown}: {error};{fix}") from None


def _parameters(factory: Any) -> Parameters | None:
    """The factory's named parameters with their defaults, and whether it also takes
    **kwargs (any name may set the class count then); None without a signature."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    kinds = [p.kind for p in signature.parameters.values()]
    named = {
        p.name: p.default
        for p in signature.parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    return named, inspect.Parameter.VAR_KEYWORD in kinds


def outputs_fix(
    record: dict[str, Any], k: int, got: int | None, parameters: Parameters | None
) -> str:
    """How to give a model from code `k` outputs where it gives `got` per image: the
    argument that set `got` (given, or a parameter whose default is `got`), or, for a
    factory with no such parameter, its last layer. `parameters` are the factory's, as
    `ModelSource.build_with_parameters` returns them; None (unknown): any name may be it.
    "--model-arg NAME=k" was said of every factory, one without parameters too, where no
    --model-arg can help."""
    generic = f"give it {k} outputs, e.g. by its factory's argument: --model-arg NAME={k}"
    if got is None:  # not one dim per image: no count to look for
        return generic
    given = dict(record.get("args", {}))
    params, open_ended = parameters if parameters is not None else ({}, True)
    named = [n for n, text in given.items() if text == repr(got)] or [
        n for n, d in params.items() if n not in given and type(d) is int and d == got
    ]
    if len(named) > 1:  # width=10 and classes=10: the name that says classes
        named = [n for n in named if re.search("class|label|out", n, re.I)] or named
    if len(named) == 1:
        was = "given" if named[0] in given else "its default"
        return f"give it {k} outputs: --model-arg {named[0]}={k} ({named[0]}={got} was {was})"
    factory = record.get("reference", "").rsplit(":", 1)[-1]
    if open_ended or named:
        return generic
    if not params:
        return (
            f"give it {k} outputs: {factory}() takes no arguments, so change its last layer "
            f"to {k} outputs (or give {factory} a parameter for them)"
        )
    # a count comes from a parameter without a default (or None) or from the last layer: one
    # whose int default is not `got`, or any other default, did not set it
    could = [n for n, d in params.items() if n not in given and (d is None or d is _NONE)]
    if not could:
        return (
            f"give it {k} outputs: no argument of {factory}({', '.join(params)}) set its {got} "
            f"(none defaults to {got}), so change its last layer to {k} outputs (or give "
            f"{factory} a parameter for them)"
        )
    return (
        f"give it {k} outputs: change its last layer to {k} outputs, or pass the argument "
        f"of {factory}({', '.join(could)}) that sets them: --model-arg NAME={k}"
    )


def _call_text(args: tuple[tuple[str, Any], ...]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in args)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:300] + ("..." if len(text) > 300 else "")


def _accepting(accept_changed: bool | None) -> bool:
    if accept_changed is not None:
        return accept_changed
    return os.environ.get(ACCEPT_CHANGED_ENV, "").strip().lower() in ("1", "true", "yes")
