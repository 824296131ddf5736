"""A run directory opened for reading: `load_run` checks every file against the others and
returns a `Run` whose model holds the final weights, in eval mode.

    run = load_run("runs/fast")
    x = run.preprocess(images_uint8)          # (B, C, H, W) -> normalized float
    probs = run.model(x).softmax(1)           # (B, classes)

Weights load with safetensors only: nothing is unpickled; NaN/inf weights are refused; the
SHA-256 of spec.yaml and config.json stored in model.safetensors' metadata catch an edit
made after training.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from cnnlab.data import load_dataset, to_float
from cnnlab.data.folder import FOLDER_TEST_FRACTION, holdout_fingerprint, list_images
from cnnlab.data.image import IMAGE_EXTENSIONS
from cnnlab.data.sets import dataset_name
from cnnlab.data.split import pixel_batch
from cnnlab.errors import CnnlabError, DataError, RunError, SpecError
from cnnlab.inspect import (
    classifier_misfit,
    compiled_names_as,
    decompiled,
    device_of,
    preserved,
    reloaded,
)
from cnnlab.inspect.preserve import plain_name
from cnnlab.inspect.progress import Progress
from cnnlab.train import checkpoint, fp32_layers
from cnnlab.train.checkpoint import weight_mismatch
from cnnlab.train.lazy import materialize
from cnnlab.train.run_files import (
    CHECKPOINT_TENSORS,
    CONFIG,
    HASHES_KEY,
    MODEL_WEIGHTS,
    SPEC,
    check_classes,
    check_config,
    check_given_model,
    data_gone,
    data_option,
    import_inputs,
    input_option,
    read_config,
    read_metrics,
    run_hashes,
    shell_word,
    spec_differs,
    unreadable_data,
    writer,
)
from cnnlab.train.source import ModelSource

__all__ = ["Run", "load_run", "weight_mismatch"]


@dataclass(frozen=True)
class Run:
    """A run directory loaded: `model` is in eval mode with the final weights. `spec` is the
    Spec of a spec run (None for a model from code); `source` says where the model came from
    (a `cnnlab.train.source.ModelSource`, None for a module given to `train` directly)."""

    path: Path
    spec: Any  # cnnlab.design.spec.Spec, or None
    model: nn.Module
    config: dict[str, Any]  # config.json: TrainConfig fields + data, classes, mean, std, ...
    source: Any = None

    @property
    def name(self) -> str:
        """The spec's name, the factory's, or the module's class."""
        if self.spec is not None:
            return self.spec.name
        return self.source.name if self.source is not None else type(self.model).__name__

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.config["classes"])

    @property
    def mean(self) -> tuple[float, ...]:
        return tuple(self.config["mean"])

    @property
    def std(self) -> tuple[float, ...]:
        return tuple(self.config["std"])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) the model was trained on."""
        return tuple(self.config["input_shape"])

    @property
    def data(self) -> str:
        """The data set the run was trained on (a name or a directory)."""
        return self.config["data"]

    @property
    def precision(self) -> str:
        """ "bf16" or "fp32": what training evaluated in (stored, not re-decided)."""
        return self.config.get("precision_used", "fp32")

    @property
    def autocast(self) -> torch.dtype | None:
        return torch.bfloat16 if self.precision == "bf16" else None

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (0..255; other integers too) or float ([0, 1]) images `(B, C, H, W)` or one
        `(C, H, W)` -> normalized float32, with the training split's per-channel mean and
        std; other shapes, layouts or ranges: DataError (`pixel_batch`)."""
        images = pixel_batch(images, self.input_shape)  # one image: a batch of one
        return to_float(images, self.mean, self.std)

    def dataset(self, split: str = "test", *, progress: Progress | None = None):
        """The run's data set `split` as an ImageSet, converted to the model's input shape.
        progress: an image folder's reading, file by file (`load_dataset`)."""
        c, h, w = self.input_shape
        if self.data is None:
            raise RunError(
                f"{self.path}: the run records no data set (imported without --data); import "
                "it again with --data NAME|DIR (eval and probe read its data; diagnose also "
                "takes --data)"
            )
        unreadable_data(self.path, self.config)
        try:
            found = load_dataset(self.data, split, channels=c, size=(h, w), progress=progress)
        except CnnlabError as error:
            raise RunError(
                f"{self.path}: cannot load its data {self.data!r}: {error}{data_gone(self.data)}"
            ) from error
        self._check_holdout()
        check_classes(self.path, self.config, found.classes, dataset_name(self.data) is not None)
        return found

    def with_data(self, folder: str | Path) -> Run:
        """This run reading its image folder from `folder`, where the folder is now (moved,
        or the run copied to another machine: config.json records it by its absolute path).
        RunError unless the run trained on a folder, `folder` holds the run's classes, and a
        run that held out 20 % of its folder gets a folder without DIR/train or DIR/test; the
        files that hold-out was drawn from are checked when the data is read (`dataset`), as
        for the recorded path. (A run without that record read a DIR/test, or predates the
        record: either layout is taken.)"""
        if self.data is None:
            raise RunError(
                f"{self.path}: the run records no data set (imported without --data), so there "
                "is no folder to find elsewhere; import it again with --data NAME|DIR"
            )
        if dataset_name(self.data) is not None:
            raise RunError(
                f"{self.path}: --data DIR gives the place of a run's image folder after a move; "
                f"this run's data is {self.data!r}, which is not a folder"
            )
        root = Path(folder).expanduser().resolve()
        fixed = (root / "train").is_dir() or (root / "test").is_dir()
        try:
            classes, _ = list_images(root / "train" if (root / "train").is_dir() else root)
        except DataError as error:
            raise RunError(f"--data {folder}: {error}") from error
        moved = {**self.config, "data": str(root)}
        check_classes(self.path, moved, tuple(classes), named=False, given=str(folder))
        if fixed and "holdout" in self.config:
            raise RunError(
                f"--data {folder}: the run's folder had a {FOLDER_TEST_FRACTION:.0%} hold-out of "
                "its files as test images, this one has DIR/train or DIR/test; give the folder "
                "it was trained on"
            )
        return dataclasses.replace(self, config=moved)

    def _check_holdout(self) -> None:
        """RunError if the folder's test hold-out would not be the one the run held out
        (`holdout_record`): a file added, removed or renamed redraws it, and the test images
        then include images the run trained on, scored as if unseen."""
        then = self.config.get("holdout")
        if then is None or holdout_fingerprint(self.data) == then:
            return
        raise RunError(
            f"{self.path}: the folder {self.data} has changed since the run held out its test "
            f"images (files added, removed or renamed): its {FOLDER_TEST_FRACTION:.0%} hold-out "
            "is drawn anew from what the folder holds, and would now include images the run "
            "trained on; restore the folder as it was, or keep new images in another folder"
        )

    def metrics(self) -> list[dict[str, Any]]:
        """The rows of metrics.jsonl, one per epoch (empty before the first epoch ends)."""
        return read_metrics(self.path)

    def __repr__(self) -> str:
        c, h, w = self.input_shape
        return (
            f"Run({str(self.path)!r}, model={self.name!r}, {c}×{h}×{w}, "
            f"{len(self.classes)} classes, data={self.data!r})"
        )


def holdout_record(data: str | None) -> dict[str, str]:
    """config.json's record of a folder's test hold-out ({"holdout": SHA-256 of the files it
    is drawn from}, `folder.holdout_fingerprint`), {} for a named set or a folder with a
    fixed DIR/test; every later command that reads the data checks it (`Run.dataset`)."""
    found = holdout_fingerprint(data) if data is not None and dataset_name(data) is None else None
    return {} if found is None else {"holdout": found}


def load_run(
    path: str | Path, *, model: nn.Module | None = None, accept_changed: bool | None = None
) -> Run:
    """Read a run directory, checking every file against the others; RunError names the
    missing or broken file and how to fix it.

    model: the module a run trained from a Python object (train(module, ..., out)) used;
    its weights are loaded into it, as it is (RunError for a run of a spec or code). A
    model built from the run's code or spec has each torch.compile wrapper replaced by the
    module it holds (`inspect.decompiled`). accept_changed: see `cnnlab.train.source`."""
    path = Path(path)
    _check_directory(path)
    check_is_run(path)
    config = read_config(path)
    check_config(config, path)
    record = config.get("model") or {"kind": "spec"}
    source = None
    if record.get("kind") == "module" and model is None:
        raise RunError(
            f"{path} was trained from a Python object ({record.get('class')}): in Python, open "
            "it with cnnlab.train.load_run(path, model=<a fresh instance>); for the commands, "
            f"make a run of its code: cnnlab import --model file.py:factory --weights "
            f"{path / MODEL_WEIGHTS} --data {data_option(config)}{input_option(config)} "
            "--out NEW_RUN"
        )
    check_given_model(path, record, model)
    if record.get("kind") != "module":
        if record.get("kind") == "spec" and not (path / SPEC).is_file():
            raise RunError(f"{path} has no {SPEC}: it is not a complete run directory")
        source = _source(path, record, config, accept_changed)
        # eager: no command compiles to run a few batches; lazy layers take the run's shape
        model = decompiled(source.build(config["input_shape"]))
    materialize(model, config["input_shape"], f"model {type(model).__name__}")  # lazy layers
    weights = _weights_file(path, config)
    # a model trained compiled saved `features._orig_mod.0.weight`: the same weights
    state = compiled_names_as(_read_weights(path, weights, config), model.state_dict())
    made_in_forward(model, state, config["input_shape"])
    differ = weight_mismatch(model.state_dict(), state)
    if differ:
        what = path / SPEC if getattr(source, "kind", "") == "spec" else _model_text(source)
        raise RunError(
            f"{weights} does not match {what}: {differ}; {_mismatch_fix(path, config, source)}"
        )
    model.load_state_dict(state)
    reloaded(model)  # eval mode, no cache of the factory's own weights (LeViT's biases)
    _keep_fp32(model, config, path)
    _check_outputs(model, config, path, source)  # before the hashes: the more precise message
    _check_hashes(path, weights, config)
    spec = source.spec if source is not None and source.kind == "spec" else None
    return Run(path, spec, model, config, source)


def _check_directory(path: Path) -> None:
    """RunError for a path that is a file, an image's name or no directory: how a run is
    made (by train, or by import for a model trained elsewhere)."""
    # `predict IMAGE RUN`: was told to train into the image's path (a missing image too)
    if (path.exists() and not path.is_dir()) or path.suffix.lower() in IMAGE_EXTENSIONS:
        what = "a file" if path.exists() else "an image's name"
        raise RunError(
            f"{path} is {what}, not a run directory; give the directory `cnnlab train --out` "
            "or `cnnlab import --out` wrote (the commands take the run first, then any images)"
        )
    if not path.is_dir():
        raise RunError(
            f"{path} is not a run directory (train one: cnnlab train --out {path}; a model "
            "trained elsewhere becomes one with cnnlab import --model file.py:factory "
            f"--weights FILE.safetensors --data NAME|DIR --out {path})"
        )


# a run holds these from its start (`Run.start` writes spec.yaml, config.json, metrics.jsonl)
_RUN_FILES = (
    CONFIG,
    SPEC,
    checkpoint.CHECKPOINT_STATE,
    checkpoint.MODEL_WEIGHTS,
    "metrics.jsonl",
)


def check_is_run(path: Path) -> None:
    """A directory with none of a run's files is no run, not an incomplete one: said so, with
    the runs inside it when it holds some (`serve runs/` for `serve runs/fast`). It was told
    'has no config.json: it is not a complete run', which reads as a run cut short. `report`
    asks it too (`report.check_run`), so every command says one thing of such a directory."""
    if any((path / name).exists() for name in _RUN_FILES):
        return
    inside = sorted(p.name for p in path.iterdir() if (p / CONFIG).is_file())
    if inside:
        shown = ", ".join(str(path / n) for n in inside[:3]) + (", ..." * (len(inside) > 3))
        raise RunError(f"{path} is a directory of runs, not a run: give one of them ({shown})")
    raise RunError(
        f"{path} is not a run directory (no config.json): give the directory "
        "`cnnlab train --out` or `cnnlab import --out` wrote"
    )


def _keep_fp32(model: nn.Module, config: dict[str, Any], path: Path) -> None:
    """The layers a bf16 run computed in fp32 (config.json's `fp32_layers`) do so again,
    so evaluation and prediction compute as training's evaluation did. Run.model keeps
    them so; `fp32_layers.restore(run.model)` makes it the plain module (torch.jit.script)."""
    if config.get("precision_used") != "bf16":
        return
    names = config.get("fp32_layers", [])
    layers = fp32_layers.layers_by_name(model)  # plain names: `_orig_mod` or not, both ways
    missing = sorted(n for n in names if plain_name(n) not in layers)
    if missing:
        raise RunError(
            f"{path / CONFIG}: fp32_layers names layers the model lacks: "
            f"{', '.join(missing)}; the model's code changed since the run"
        )
    fp32_layers.keep_fp32(model, names)


def _weights_file(path: Path, config: dict[str, Any]) -> Path:
    weights = path / MODEL_WEIGHTS
    if not weights.is_file():
        raise RunError(f"{path} has no {MODEL_WEIGHTS}: {missing_weights(path, config)}")
    return weights


def missing_weights(path: Path, config: dict[str, Any]) -> str:
    """What to do about a run without model.safetensors (config: its config.json): wait for
    the training that holds its lock, import the weights again (an imported run has no
    checkpoint), resume from its checkpoint, or train it."""
    pid = writer(path)
    if pid is not None:  # --resume would be refused: the run is being trained
        return f"it is still training (cnnlab process {pid}); wait for it to end"
    if "imported" in config:
        source = config["imported"].get("weights", "its weights file")
        return (
            f"it was made by cnnlab import: import {source} again, with the --out of a new "
            "directory (cnnlab import writes only into an empty one)"
        )
    if (path / CHECKPOINT_TENSORS).is_file():  # the commit point, not its sidecar
        return f"training did not finish; continue it with `cnnlab train --resume --out {path}`"
    return "train the run first"


def _read_weights(path: Path, weights: Path, config: dict[str, Any]) -> dict:
    """model.safetensors' tensors; a file that cannot be used (truncated, zero bytes, NaN)
    beside the last epoch's whole checkpoint says that a resume writes it again."""
    try:
        return checkpoint.load_weights(weights)
    except RunError as error:
        if checkpoint.saved_position(path) != (config.get("epochs"), 0):
            raise
        raise RunError(
            f"{error}; the checkpoint of the run's last epoch is whole: `cnnlab train --resume "
            f"--out {path}` writes {MODEL_WEIGHTS} again from it"
        ) from None


def _source(path: Path, record: dict, config: dict[str, Any], accept_changed) -> ModelSource:
    """The run's ModelSource. A spec.yaml that no longer reads as a spec and hashes otherwise
    than the weights were saved with was edited (or cut short) after training: its parse
    error's advice ('add e.g. input: ...') would have the user rebuild it by hand."""
    try:
        return ModelSource.from_record(record, path, accept_changed)
    except SpecError:
        if record.get("kind") != "spec" or not _spec_edited(path, config):
            raise
    raise RunError(
        f"{path / SPEC} was edited after training: it no longer reads as a spec, and its "
        f"SHA-256 differs from the one {MODEL_WEIGHTS} was saved with; restore it, or train again"
    )


def _spec_edited(path: Path, config: dict[str, Any]) -> bool:
    """Whether spec.yaml hashes otherwise than model.safetensors records (False when the
    weights are missing, unreadable or record no hash: their own checks speak then)."""
    try:
        then = _stored_hashes(path / MODEL_WEIGHTS).get("spec_sha256")
    except Exception:  # safetensors' own errors on a corrupt file; OSError; RunError
        return False
    return spec_differs(path, then)


def _stored_hashes(weights: Path) -> dict:
    """The spec and config hashes in the weights file's metadata ({} when it has none)."""
    with safe_open(weights, framework="pt") as file:
        text = (file.metadata() or {}).get(HASHES_KEY)
    try:
        return json.loads(text) if text else {}
    except ValueError:
        raise RunError(f"{weights}: its {HASHES_KEY} metadata is not valid JSON") from None


def _check_hashes(path: Path, weights: Path, config: dict[str, Any]) -> None:
    """The spec and config hashes the weights were saved with, against the files now."""
    stored = _stored_hashes(weights)
    spec = path / SPEC
    now = run_hashes(spec.read_text() if spec.is_file() else None, config)
    for key, file in (("spec_sha256", SPEC), ("config_sha256", CONFIG)):
        if key in stored and stored[key] != now[key]:
            if checkpoint.saved_hashes(path).get(key) == now[key]:  # the file is the run's
                raise RunError(
                    f"{weights} is another run's: it was saved with another {file} than this "
                    f"run's, which its checkpoint matches; put the run's own {MODEL_WEIGHTS} "
                    f"back, or `cnnlab train --resume --out {path}` writes it again from the "
                    "checkpoint"
                )
            raise RunError(
                f"{path / file} was edited after training (its SHA-256 differs from the one "
                f"{MODEL_WEIGHTS} was saved with); restore it, or train again"
            )


def _check_outputs(model: nn.Module, config: dict[str, Any], path: Path, source: Any) -> None:
    """The model runs on its input shape and gives one logit per class of config.json (a
    final softmax and a model that fails on one image are left to training and import to
    refuse: a run trained before those checks keeps opening for eval and report)."""
    k, size = len(config["classes"]), "×".join(map(str, config["input_shape"]))
    misfit = classifier_misfit(model, config["input_shape"], k)
    if misfit is None or misfit.kind in ("softmax", "one-image"):
        return
    if misfit.kind == "classes" and getattr(source, "kind", "spec") == "spec":
        raise RunError(f"{path / CONFIG} lists {k} classes but the model {misfit.why}")
    what = _model_text(source)
    raise RunError(f"{path}: {what} does not fit its {size} images, {k} classes: {misfit.why}")


def _mismatch_fix(path: Path, config: dict[str, Any], source: Any) -> str:
    """How to open a run whose weights do not fit the model built now: the model that
    trained them back, or a new run for the model as it is (the weights are not touched)."""
    data = config.get("data")
    if source is None:  # a run of a Python object: the caller's instance
        kind = (config.get("model") or {}).get("class") or "the class the run was trained with"
        return f"pass load_run(model=...) a fresh instance of {kind}, built as in training"
    args = "".join(f" --model-arg {shell_word(f'{k}={v!r}')}" for k, v in source.args)
    if config.get("imported"):  # imported without --data: what it was given instead
        given = (
            f"--data {data_option(config)}{input_option(config)}"
            if data is not None
            else import_inputs(config)
        )
        return (
            f"restore the {'spec' if source.kind == 'spec' else 'code'} the weights were "
            f"imported for, or import weights that fit the model as it is now "
            f"(cnnlab import --model {source.reference}{args} --weights FILE {given} "
            "--out NEW_RUN)"
        )
    if source.kind == "spec":
        return (
            f"the weights are another spec's ({SPEC} edited since, or the weights copied "
            "from another run): restore the spec they were trained with, or train it as it "
            f"is now (cnnlab train {path / SPEC} --data {data_option(config)} --out NEW_RUN)"
        )
    # the --input training was given (recorded with the code): without it, train takes the
    # data's own size, which a folder of mixed sizes does not have
    shape = source.input_shape
    given_input = "" if shape is None else f" --input {','.join(map(str, shape))}"
    return (
        f"{source.reference} builds another network than the weights' (its file or a module "
        "it imports changed since, or the weights copied from another run): restore that "
        "code, or train it as it is now "
        f"(cnnlab train --model {source.reference}{args}{given_input} --data "
        f"{data_option(config)} --out NEW_RUN)"
    )


def _model_text(source: Any) -> str:  # messages name a model from code by its reference
    return f"the model of {source.reference}" if source is not None else "the model"


def made_in_forward(model: nn.Module, state: dict[str, torch.Tensor], input_shape) -> None:
    """Runs `model` on a zero batch of `input_shape` (C, H, W) when `state` holds names its
    state_dict lacks: a module that registers a buffer in its first forward (a call counter,
    a cache) saved it with its weights, and a fresh instance has it only after one forward.
    Eval mode first; if names are still lacking, train mode (a batch of two: BatchNorm's
    statistics need them), for a buffer registered only while training (`if self.training
    and not hasattr(...)`), which no eval-mode forward makes: every command that opened such
    a run refused its weights ('not in the model'). No gradient; `preserved` puts back the
    mode, the existing buffers and the RNG; loading `state` then overwrites what the forward
    set. A forward that fails leaves the model as it is: the names still differ and the
    caller's mismatch message says which."""
    for train, batch in ((False, 1), (True, 2)):
        if state.keys() <= model.state_dict().keys():  # (one state_dict, not one per name)
            return
        x = torch.zeros(batch, *input_shape, device=device_of(model))
        with preserved(model, train=train), torch.no_grad():
            try:
                model(x)
            except Exception:  # the user's code may raise anything: the mismatch is the news
                pass
