"""`import_run`: a run directory for a model trained elsewhere, so that eval, predict, explain,
visualize, diagnose, probe, report and serve work on it as on a run cnnlab trained.

    source = parse_model_ref("nets.py:make_net", ["width=16"])
    result = import_run(source, "trained.safetensors", "runs/mine", data="fashion-mnist")

What it writes (no spec.yaml: the model is rebuilt from its code, `train.source`):
- config.json: the model's source record (reference, arguments, SHA-256 of its file), the
  data, classes, normalization (mean, std) and input shape, and where the weights came from;
- model.safetensors: the weights, checked against the model first (every tensor's shape,
  no missing or unexpected name, all finite), with the config's hash (`train.rundir`);
- metrics.jsonl, empty: an imported run has no training epochs;
- evaluation.json: accuracy, loss, per-class accuracy and confusion matrix on the data's test
  split, measured on the run as `load_run` opens it (so every later command can open it).

Classes and normalization come from `data` (its train split's per-channel mean and std), or
from `classes`, `mean` and `std` given explicitly (they win; a model trained elsewhere was
normalized as it was trained, which the data's own statistics only approximate).
Loading the model runs its code (see `train.source`); weights are read with safetensors only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.utils import parametrize

from cnnlab.data import load_splits, normalization_stats
from cnnlab.data.sets import dataset_name
from cnnlab.errors import DataError, RunError, SpecError
from cnnlab.inspect import (
    classifier_misfit,
    compiled_names_as,
    decompiled,
    preserved,
    reloaded,
)
from cnnlab.inspect.alone import batch_note
from cnnlab.inspect.progress import Progress
from cnnlab.train import checkpoint
from cnnlab.train.evaluate import evaluate
from cnnlab.train.guard import tanh_note
from cnnlab.train.inputs import data_notes
from cnnlab.train.lazy import lazy_names, materialize
from cnnlab.train.measure import guesses
from cnnlab.train.misfit_fix import misfit_fix
from cnnlab.train.run import holdout_record
from cnnlab.train.rundir import (
    EVALUATION,
    RunDir,
    check_config,
    is_run,
    load_run,
    made_in_forward,
    weight_mismatch,
    worth_keeping,
)
from cnnlab.train.source import ModelSource, file_sha256

__all__ = ["EVALUATION", "import_run"]

# torch's weight_norm parametrization, by name: its class is private (torch may move it)
_WEIGHT_NORM = "_WeightNorm"


def import_run(
    source: ModelSource,
    weights: str | Path,
    out: str | Path,
    data: str | Path | None = None,
    *,
    classes: Sequence[str] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    input_shape: Sequence[int] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Check, evaluate and write the run (see the module docstring); returns what was written:
    {"out", "classes", "mean", "std", "input_shape", "evaluation" (dict or None), "notes"
    (weights that score no better than guessing one class: the likely cause), "skipped" and
    "converted" ([path, why] of an image folder's unreadable and converted files, as train
    returns and config.json records them)}.

    input_shape (C, H, W): what the model takes; default the data's own image shape (then
    `data` is needed). RunError for an `out` that is not empty or weights that do not fit,
    DataError for data or options that disagree (class count, channel count). progress: an
    image folder's reading, file by file (`load_splits`), then the evaluation's batches
    (`predict_logits`)."""
    out, weights = Path(out), Path(weights)
    _check_out(out)
    # opened (made, locked) first: an unwritable --out fails before the model, weights and
    # data are read, as train's does
    directory = RunDir.open(out, resume=False, force=False)
    try:
        options = {"classes": classes, "mean": mean, "std": std, "input_shape": input_shape}
        result = _imported(directory, source, weights, data, options, progress)
    except BaseException:
        # all or nothing: a half import (no evaluation.json after a Ctrl-C in the test
        # evaluation) was a run that a second import refused as 'not empty'; `out` was new
        # or empty (_check_out), so what cnnlab wrote there is all there is
        directory.clear()
        directory.close(failed=True)
        raise
    directory.close()
    return result


def _imported(directory: RunDir, source, weights: Path, data, options: dict, progress) -> dict:
    """import_run's work once `out` is open: model, weights, data, checks, the files."""
    input_shape = options["input_shape"]
    # as load_run opens it: names without `_orig_mod.`; lazy layers take --input's shape
    model = decompiled(
        source.build(input_shape) if input_shape else source.build_with_parameters()[0]
    )
    # the weights before the data: a wrong file fails fast, not after a download or a scan;
    # a model still lazy (no --input) has no shapes to check them against before the data's
    state = None if lazy_names(model) else _checked_weights(weights, model, source.reference)
    if input_shape is not None:  # names a forward may make: checked now too
        _made_in_forward(weights, model, state, source.reference, input_shape)
    train = test = None
    if data is not None:
        shape = {} if input_shape is None else {"channels": input_shape[0], "size": input_shape[1:]}
        train, test = load_splits(data, **shape, progress=progress)  # a folder's files
    info = _describe(train, options["classes"], options["mean"], options["std"], input_shape)
    if state is None:  # lazy layers: the data's shape, as training gives them
        materialize(model, info["input_shape"], source.label)
        state = _checked_weights(weights, model, source.reference)
    _made_in_forward(weights, model, state, source.reference, info["input_shape"])
    model.load_state_dict(state)
    # what is written, taken before the checks' forwards: one that trains its own BatchNorm
    # moves the statistics at each call, and the run held and evaluated those
    written = {k: v.detach().clone() for k, v in model.state_dict().items()}
    reloaded(model)  # eval mode, no cache of the factory's own weights (LeViT's biases)
    _check_outputs(model, source.reference, info, given=input_shape is not None)
    read = data_notes(train, test)  # a folder's files skipped, converted (resized...)
    config = {
        "model": source.to_record(),
        "data": _data_name(data),
        **holdout_record(_data_name(data)),
        **read,
        **info,
        **_data_classes(train, info["classes"]),
        "precision": "fp32",  # evaluation in fp32: how the model was trained is not known
        "imported": {"weights": str(weights.resolve()), "sha256": file_sha256(weights)},
    }
    check_config(config, directory.path)  # what every later command will check on open
    evaluation = _write(directory, config, written, test, progress)
    out = str(directory.path)
    notes = _tanh_note(model, info["input_shape"]) + _guessing_note(evaluation, test, info, options)
    notes += batch_note(model, info["input_shape"], source.reference)
    evaluated = evaluation and evaluation.to_dict()
    return {"out": out, **info, "evaluation": evaluated, "notes": notes, **read}


def _tanh_note(model: nn.Module, shape: Sequence[int]) -> list[str]:
    """`guard.tanh_note` on the model's outputs for two zero images, computed with autograd
    (the node that made them tells a tanh: MONAI's ViT's head ends in one)."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.zeros(2, *shape, device=device, requires_grad=True)
    with preserved(model):
        out = model(x)
    return tanh_note(out) if isinstance(out, torch.Tensor) else []


def _guessing_note(evaluation, test, info: dict, options: dict) -> list[str]:
    """Weights that score no better than always guessing one class on the data (`guesses`)
    most often meet other images than they were trained on: another size (a GAP model runs
    any) or normalization than the options this import took from the data."""
    if evaluation is None or not guesses(evaluation.accuracy, test):
        return []
    taken = [
        f"{option} {value} (the data's)"
        for option, key, value in (
            ("--input", "input_shape", ",".join(map(str, info["input_shape"]))),
            ("--mean", "mean", ",".join(f"{v:.4g}" for v in info["mean"])),
            ("--std", "std", ",".join(f"{v:.4g}" for v in info["std"])),
        )
        if options[key] is None
    ]
    said = f"; this import took {', '.join(taken)}" if taken else ""
    return [
        f"test accuracy {evaluation.accuracy:.2%} is no better than always guessing one class: "
        "were the weights trained on images of another size or normalization? Import again "
        f"with --input C,H,W, --mean and --std as at training{said}"
    ]


def _write(directory: RunDir, config: dict[str, Any], state: dict, test, progress):
    """config.json, model.safetensors (with the config's hash) and, with a test split,
    evaluation.json, measured on the run as every command will open it; locked throughout."""
    directory.start(None, config)
    directory.save_weights(state)
    if test is None:
        return None
    evaluation = evaluate(load_run(directory.path), "test", progress=progress)
    checkpoint.write_json(directory.path / EVALUATION, evaluation.to_dict())
    return evaluation


def _check_out(out: Path) -> None:
    """Import never deletes: `out` must be new or an empty directory (cnnlab's lock file
    and temp files of a killed import aside)."""
    if out.exists() and not out.is_dir():
        raise RunError(f"{out} exists and is not a directory; choose another --out")
    if out.is_dir() and worth_keeping(out) and is_run(out):  # a run, or a killed import's
        raise RunError(
            f"{out} is not empty: it holds a cnnlab run, which import never replaces; import "
            f"into a new directory (--out), or delete {out} first"
        )
    if out.is_dir() and worth_keeping(out):
        raise RunError(f"{out} is not empty; import into a new directory (--out)")


# the fix for a weights file safetensors cannot read (cut short in a copy, another format
# under the .safetensors name)
RESAVE = (
    "; the file is damaged or not safetensors: save the weights again from the model that "
    "holds them, safetensors.torch.save_file(model.state_dict(), 'weights.safetensors')"
)


def _checked_weights(weights: Path, model: nn.Module, reference: str) -> dict[str, torch.Tensor]:
    """The safetensors state, checked against the model before any data is read: the file's
    kind, every name and shape, finiteness. Only names the model lacks are let through, to
    `_made_in_forward` (a buffer the model registers in its first forward, made once the
    input shape is known); any other misfit lists them too."""
    if weights.suffix != ".safetensors":
        raise RunError(
            f"{weights}: weights are read from .safetensors files only (nothing is unpickled); "
            "convert a PyTorch .pt/.pth with safetensors.torch.save_file(model.state_dict(), ...)"
        )
    expected = model.state_dict()
    # a compiled model's state_dict names carry `_orig_mod.`: the same weights either way
    state = _weight_norm_names(model, checkpoint.load_weights(weights, RESAVE))
    state = _with_aliases(expected, compiled_names_as(state, expected))
    state = _with_norm_counters(model, state)
    if weight_mismatch(expected, {k: v for k, v in state.items() if k in expected}):
        _refuse(weights, reference, expected, state)
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise RunError(f"{weights}: tensor {name} holds NaN or infinite values")
    return state


def _weight_norm_names(model: nn.Module, state: dict[str, torch.Tensor]) -> dict:
    """`state` with the older `torch.nn.utils.weight_norm`'s names (`conv.weight_g`,
    `conv.weight_v`) under those of the parametrization the model uses
    (`conv.parametrizations.weight.original0`, `original1`): torch's `load_state_dict` renames
    them so (`parametrizations.weight_norm`'s compatibility hook), and the same weights,
    trained before the code moved to the newer API, were refused as names the model lacks."""
    renamed = dict(state)
    for name, m in model.named_modules():
        prefix = f"{name}." if name else ""
        for weight in m.parametrizations if parametrize.is_parametrized(m) else ():
            if not any(type(p).__name__ == _WEIGHT_NORM for p in m.parametrizations[weight]):
                continue
            g, v = f"{prefix}{weight}_g", f"{prefix}{weight}_v"
            if g in renamed and v in renamed:
                at = f"{prefix}parametrizations.{weight}"
                renamed[f"{at}.original0"], renamed[f"{at}.original1"] = (
                    renamed.pop(g),
                    renamed.pop(v),
                )
    return renamed


def _with_norm_counters(model: nn.Module, state: dict[str, torch.Tensor]) -> dict:
    """`state` plus each tracking norm layer's `num_batches_tracked` it lacks, the model's own:
    torch's rule for a state_dict without `_metadata` (a safetensors file), which strict
    `load_state_dict` takes without that counter (`_NormBase._load_from_state_dict`). The
    counter only drives a cumulative average (momentum=None); exporters often drop it. Only
    for a layer whose running mean the file holds: a file under other names keeps its names
    alone, for the mismatch message and its prefix hint."""
    filled = dict(state)
    for name, m in model.named_modules():
        prefix = f"{name}." if name else ""
        if (
            isinstance(m, _NormBase)
            and m.track_running_stats
            and isinstance(m.num_batches_tracked, torch.Tensor)
            and prefix + "running_mean" in state
        ):
            filled.setdefault(prefix + "num_batches_tracked", m.num_batches_tracked)
    return filled


def _made_in_forward(
    weights: Path, model: nn.Module, state: dict, reference: str, input_shape: Sequence[int]
) -> None:
    """The names of `state` the model lacks made by one forward (`made_in_forward`); those
    it still lacks are refused."""
    made_in_forward(model, state, input_shape)
    expected = model.state_dict()
    if weight_mismatch(expected, state):
        _refuse(weights, reference, expected, state)


def _refuse(weights: Path, reference: str, expected: dict, state: dict) -> None:
    raise RunError(
        f"{weights} does not fit the model of {reference}: {weight_mismatch(expected, state)}"
        + misfit_fix(expected, state)
    )


def _with_aliases(
    expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """`state` plus each name it lacks whose tensor the model shares with a name it has (a
    tied weight, a module registered under two names): safetensors' `save_model`, the way
    it asks shared tensors to be saved, keeps one name of each."""
    shared: dict[tuple, list[str]] = {}
    for name, t in expected.items():
        if t.numel():  # empty tensors may all report the same address
            where = (t.untyped_storage().data_ptr(), t.storage_offset(), t.shape, t.stride())
            shared.setdefault(where, []).append(name)
    filled = dict(state)
    for names in shared.values():
        kept = [n for n in names if n in state]
        for name in names if kept else ():
            filled.setdefault(name, state[kept[0]])
    return filled


def _data_classes(train: Any, classes: list[str]) -> dict[str, list[str]]:
    """config.json's {"data_classes": [...]}: the data's own class names where --classes
    names them otherwise, so the data read again is checked against what it holds
    (`run_files.check_classes`), not against the names the run gives them."""
    if train is None or list(train.classes) == classes:
        return {}
    return {"data_classes": list(train.classes)}


def _describe(train, classes, mean, std, input_shape) -> dict[str, Any]:
    """classes, mean, std, input_shape: the options given, the rest from the train split."""
    if train is None and None in (classes, mean, std, input_shape):
        raise DataError(
            "without --data, give --classes, --mean, --std and --input (C,H,W): "
            "the run needs its class names, normalization and input size"
        )
    shape = list(input_shape) if input_shape is not None else list(train.shape)
    if train is not None:
        data_mean, data_std = normalization_stats(train)
        if classes is not None and len(classes) != len(train.classes):
            raise DataError(
                f"--classes names {len(classes)} classes but {train.source} has "
                f"{len(train.classes)} ({', '.join(train.classes[:5])}...)"
            )
    info = {
        "classes": list(classes if classes is not None else train.classes),
        "mean": [float(v) for v in (mean if mean is not None else data_mean)],
        "std": [float(v) for v in (std if std is not None else data_std)],
        "input_shape": shape,
    }
    for key in ("mean", "std"):
        if len(info[key]) != shape[0]:
            raise DataError(_count_message(key, len(info[key]), shape[0]))
    if any(s <= 0 for s in info["std"]) and std is None:  # from --data: images of one value
        raise DataError(
            f"the images of {train.source} do not vary (std {info['std']}), so they cannot be "
            "normalized by it; give --mean and --std the model was trained with"
        )
    if any(s <= 0 for s in info["std"]):
        raise DataError(f"--std must be positive, got {info['std']}")
    twice = [c for c in dict.fromkeys(info["classes"]) if info["classes"].count(c) > 1]
    if twice and classes is None:  # from --data: folder names that print alike (`\\xe9`)
        raise DataError(
            f"{train.source} has more than one class named {twice[0]!r}; rename one of its class "
            "folders, or give each class its name with --classes"
        )
    if twice:  # was "RUN/config.json: classes must be ... distinct", of a file not written
        raise DataError(f"--classes names {twice[0]!r} more than once; give each class its name")
    if len(set(info["classes"])) < 2:
        raise DataError(f"a classifier needs at least two distinct classes, got {info['classes']}")
    return info


# what each option commonly holds, per channel count: ImageNet's statistics, (x - 0.5) / 0.5
_EXAMPLES = {
    ("mean", 3): "0.485,0.456,0.406",
    ("std", 3): "0.229,0.224,0.225",
    ("mean", 1): "0.5",
    ("std", 1): "0.5",
}


def _count_message(key: str, n: int, channels: int) -> str:
    """--mean or --std given `n` values for images of `channels` channels: one per channel."""
    values = "value" if n == 1 else "values"
    example = _EXAMPLES.get((key, channels))
    said = f", as --{key} {example}" if example else ""
    return f"--{key} has {n} {values} for {channels}-channel images: give {channels}{said}"


def _check_outputs(model: nn.Module, reference: str, info: dict[str, Any], given: bool) -> None:
    """The model runs on the input shape and gives one logit per class. given: the input
    shape was an option, not the data's own (else the way to give another is the fix, as
    train says it)."""
    shape, k = info["input_shape"], len(info["classes"])
    misfit = classifier_misfit(model, shape, k)
    if misfit is None:
        return
    if misfit.kind == "weights":  # their dtype or device: no --input would do
        raise SpecError(f"{reference}: {misfit.why}")
    if misfit.kind == "run":
        other = (
            ""
            if given
            else "; if it takes other images, give --input C,H,W (the data is converted)"
        )
        raise SpecError(
            f"{reference} cannot run on {'×'.join(map(str, shape))} images: {misfit.why}{other}"
        )
    if misfit.kind == "classes":
        raise DataError(
            f"{reference} {misfit.why} but the run has {k} classes; "
            "give the classes the model was trained on (--classes or --data)"
        )
    raise SpecError(f"{reference} {misfit.why}")


def _data_name(data: str | Path | None) -> str | None:
    """A directory by its absolute path (other commands run from elsewhere), a name as given."""
    if data is None or dataset_name(data) is not None:
        return None if data is None else str(data)
    return str(Path(data).expanduser().resolve())
