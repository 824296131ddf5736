"""What a run trains: its model (a spec, the user's code, or a module), its data, and the
checks of one against the other, all made before a step is taken (a bad --tta-shift would
otherwise fail after all the training).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.data import ImageSet, load_dataset, load_splits, normalization_stats, train_val_split
from cnnlab.data.imageset import check_scored_as
from cnnlab.data.sets import dataset_name, flips_by_default
from cnnlab.design.build import build
from cnnlab.design.spec import load_spec, preset_names
from cnnlab.errors import CnnlabError, ConfigError, DataError, RunError, SpecError
from cnnlab.inspect import device_of, dtype_of, preserved
from cnnlab.train.config import FieldError, TrainConfig
from cnnlab.train.datanotes import image_hashes
from cnnlab.train.fit import ModelChoice, check_fit
from cnnlab.train.resume import check_spec_unchanged
from cnnlab.train.run_files import names_data
from cnnlab.train.rundir import SPEC, data_gone, read_config
from cnnlab.train.source import ModelSource
from cnnlab.train.state import Splits


def check_arguments(out, config, on_epoch) -> None:
    """train()'s arguments' types, before anything is written: a dict for `config` failed as an
    AttributeError, and a non-callable `on_epoch` as a TypeError after the first epoch, its
    run directory left behind."""
    if out is not None and not isinstance(out, str | os.PathLike):
        raise ConfigError(f"out must be a directory path (str or Path), got {type(out).__name__}")
    # not from_dict: it reads a run's config.json, whose other keys it ignores, and so a
    # mistyped option ('epoch') as well
    if config is not None and not isinstance(config, TrainConfig):
        raise ConfigError(
            f"config must be a TrainConfig, got {type(config).__name__}; e.g. "
            "TrainConfig(**options), which refuses an option it does not know"
        )
    if on_epoch is not None and not callable(on_epoch):
        raise ConfigError(f"on_epoch must be callable(row, epochs), got {on_epoch!r}")


def choose_model(model_or_spec: Any, seed: int) -> ModelChoice:
    """A spec (Spec, dict, preset name, file), a ModelSource or an nn.Module, built with
    torch seeded by `seed` (a module keeps the weights it has)."""
    if isinstance(model_or_spec, nn.Module):
        kind = type(model_or_spec)  # lazy layers take their shapes in fit.check_fit
        record = {"kind": "module", "class": f"{kind.__module__}.{kind.__qualname__}"}
        return ModelChoice(model_or_spec, None, record, f"model {kind.__name__}")
    if isinstance(model_or_spec, ModelSource) and model_or_spec.kind == "code":
        torch.manual_seed(seed)
        model, parameters = model_or_spec.build_with_parameters()
        title = f"model {model_or_spec.reference}"
        record, shape = model_or_spec.to_record(), model_or_spec.input_shape
        return ModelChoice(model, None, record, title, shape, parameters=parameters)
    if isinstance(model_or_spec, ModelSource):
        model_or_spec = model_or_spec.spec
    spec = load_spec(model_or_spec)
    torch.manual_seed(seed)
    model = build(spec)
    # load_spec reads a name of preset_names() as that preset before any path
    preset = (
        model_or_spec
        if isinstance(model_or_spec, str) and model_or_spec in preset_names()
        else None
    )
    record = {"kind": "spec", "name": spec.name}
    return ModelChoice(model, spec, record, f"spec {spec.name!r}", preset=preset)


def resume_inputs(out: Path, model_or_spec: Any, data: Any, config: TrainConfig | None):
    """(ModelChoice, data, config) stored in `out`; RunError when the caller's differ."""
    stored = read_config(out)
    if "imported" in stored:  # no TrainConfig, no checkpoint: a resume trained a fresh model
        raise RunError(
            f"cannot resume {out}: it was made by cnnlab import, not trained here, so there is "
            "no training to continue; train its model in a new run (--model REF --out NEW)"
        )
    try:
        stored_config = TrainConfig.from_dict(stored)
    except (ConfigError, TypeError) as error:
        raise RunError(f"{out / 'config.json'}: {error}") from None
    if config is not None and config.flip is None:
        # auto (the data decides) is what the run resolved it to on this data: the config a
        # run was started with resumes it, not 'flip None (run has False)'
        config = dataclasses.replace(config, flip=stored_config.flip)
    if config is not None and stored.get("channels_last_refused") and config.channels_last:
        # the default layout, which the run fell back from (fit.check_fit): the run's NCHW
        config = dataclasses.replace(config, channels_last=False)
    if config is not None and config != stored_config:
        raise _options_changed(out, config, stored_config)
    choice = _stored_model(out, stored, model_or_spec, stored_config.seed)
    gone = data_gone(stored["data"])
    if data is None and stored.get("data_in_memory"):
        raise RunError(
            f"cannot resume {out}: it was trained on images given in Python (an ImageSet, "
            f"{stored['data']!r}), which it cannot read again; pass them as before: "
            "train(model, data, out, resume=True)"
        )
    if data is None and gone:
        raise RunError(f"cannot resume {out}: its data is missing{gone}")
    if data is None:
        data = stored["data"]
    elif isinstance(data, str | Path) and str(data_name(data)) != stored["data"]:
        # the same images by another name (fashion-mnist by its directory) are refused too:
        # the run resumes on what config.json names, so leaving --data out is the fix
        fix = gone or "; resume without --data: a run resumes on the data it was trained on"
        raise RunError(
            f"cannot resume {out} on data {data!r}: it was trained on {stored['data']!r}{fix}"
        )
    return choice, data, stored_config


class OptionsChanged(RunError, FieldError):
    """A resume refused for options other than the run's. str() names the fields, as a
    Python caller wrote them; `field` and `problem` (the first differing one) let the CLI
    name the option the user typed (cli._as_option: '--batch-size 64 (run has 128): ...')."""

    def __init__(self, field: str, problem: str, message: str) -> None:
        FieldError.__init__(self, field, problem)
        self.args, self.message = (message,), message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple:
        return type(self), (self.field, self.problem, self.message)


def _options_changed(out: Path, config: TrainConfig, stored: TrainConfig) -> OptionsChanged:
    changed = {
        k: f"{v!r} (run has {getattr(stored, k)!r})"
        for k, v in config.to_dict().items()
        if getattr(stored, k) != v
    }
    fix = "resume without them or start a new run"
    first, *more = changed
    also = f", and {len(more)} more option{'s' if len(more) > 1 else ''} given" if more else ""
    return OptionsChanged(
        first,
        f"{changed[first]}{also}: cannot resume {out} with other options than it was started "
        f"with; {fix if more else fix.replace('them', 'it')}",
        f"cannot resume {out} with different options: "
        f"{', '.join(f'{k} {v}' for k, v in changed.items())}; {fix}",
    )


def _stored_model(out: Path, stored: dict, given: Any, seed: int) -> ModelChoice:
    """The run's own model, rebuilt from its record; RunError when `given` is another."""
    record = stored.get("model") or {"kind": "spec"}
    if not isinstance(record, dict):
        raise RunError(f"{out / 'config.json'}: 'model' must be a record, not {record!r}")
    if record.get("kind") == "module":
        if not isinstance(given, nn.Module):
            raise RunError(
                f"{out} was trained from a Python object ({record.get('class')}); resume it "
                "with train(<a fresh instance>, ..., resume=True)"
            )
        return choose_model(given, seed)
    try:
        source = ModelSource.from_record(record, out)
    except SpecError:
        check_spec_unchanged(out)  # a spec.yaml cut or broken since: restore it, not rebuild it
        raise
    if isinstance(given, nn.Module):  # it was set aside, untrained, for the run's own model
        what = SPEC if source.kind == "spec" else f"model {source.reference}"
        raise RunError(
            f"cannot resume {out} with a {type(given).__name__} object: the run trains its "
            f"{what}; resume it with train(None, None, out, resume=True)"
        )
    if given is not None:
        same = (
            load_spec(given).to_dict() == source.spec.to_dict()
            if source.kind == "spec" and not isinstance(given, ModelSource)
            else isinstance(given, ModelSource) and given.to_record() == source.to_record()
        )
        if not same:
            what = SPEC if source.kind == "spec" else f"model {source.reference}"
            raise RunError(
                f"cannot resume {out} with a different model than its {what}; resume without "
                "a spec, --preset or --model: a run resumes the model it recorded"
            )
    return choose_model(source, seed)


def data_name(data: Any) -> Any:
    """How config.json names `data`: a directory by its absolute path (so eval, --resume and
    report work from any working directory), a data set name as given (as load_dataset, a
    name wins over a directory of that name in the working directory)."""
    if isinstance(data, str | Path) and dataset_name(data) is not None:
        return data
    if isinstance(data, str | Path) and Path(data).expanduser().is_dir():
        return str(Path(data).expanduser().resolve())
    return data


def load_data(data: Any, input_shape: tuple[int, int, int] | None, strict: bool, progress=None):
    """(train ImageSet, test ImageSet or None, name stored in config.json). input_shape None
    (a model from code or a module): the data set's own channels and size. progress: train's
    rich Progress, on which an image folder's reading is a task of its own (`reading`)."""
    if isinstance(data, ImageSet):  # as `--data` names it, when load_dataset read it
        train_set, test_set = check_pair(data, None)
        name = data.loaded_as or data.source
    elif isinstance(data, tuple | list) and len(data) == 2:
        train_set, test_set = check_pair(*data)
        name = train_set.loaded_as or train_set.source
    else:
        name = str(data_name(data))
        shape = {} if input_shape is None else {"channels": input_shape[0], "size": input_shape[1:]}
        train_set, test_set = load_splits(name, strict=strict, progress=reading(progress), **shape)
    if len(train_set.classes) < 2:  # load_splits says so for named sets; here for ImageSets
        raise DataError(
            f"{train_set.source}: only one class; a classifier needs at least two (it would "
            "'train' to 100 % and loss 0 and mean nothing)"
        )
    return train_set, test_set, name


def reading(progress) -> Any:
    """load_splits' progress(done, total, what) as a task of train's rich Progress, drawn at
    once (a folder of phone photos reads at 0.1-1.4 s an image, before the first epoch's
    bar); None without one."""
    if progress is None:
        return None
    task = None

    def report(done: int, total: int, what: str) -> None:
        nonlocal task
        if task is None:
            task = progress.add_task(what, total=total or None)
            progress.refresh()
        progress.update(task, completed=done, total=total or None, description=what)

    return report


def memory_record(data: Any) -> dict[str, bool]:
    """config.json's {"data_in_memory": True} unless `data` is what the run's recorded name
    reads again: a name or folder; or ImageSets that are that data's images, the training
    set its train split and the test set (if any) its test split (`_holds`). Other images
    (the user's arrays named otherwise, or named "digits" but not digits, a test split
    trained on, another set's test images) no command can read again, and `Run.dataset`
    says so: a later command scored the named set in their place, the test split of a run
    trained on it as unseen."""
    if isinstance(data, ImageSet):
        data = (data, None)
    if not isinstance(data, tuple | list):
        return {}
    train_set, test_set = data
    name = train_set.loaded_as or train_set.source
    found = _holds(train_set, name, "train")
    found = found and (test_set is None or _holds(test_set, name, "test"))
    return {} if found else {"data_in_memory": True}


def _holds(ds: ImageSet, name: str, split: str) -> bool:
    """Whether `ds` is `split` of what `load_dataset(name)` reads: that split as it read it,
    or images made otherwise whose source text is `name` and each of which, with its label,
    is one of that split's at `ds`'s shape (a subset of Fashion-MNIST keeps its name). The
    source text alone is the user's word: 28×28 arrays of their own named "digits" were
    recorded as digits, and eval scored sklearn's digits in their place."""
    if ds.loaded_as is not None:
        return (ds.loaded_as, ds.loaded_split) == (name, split)
    if ds.source != name or not names_data(name):
        return False
    channels, height, width = ds.shape
    try:
        found = load_dataset(name, split, channels=channels, size=(height, width))
    except CnnlabError:  # not here to read (Fashion-MNIST not installed), or not convertible
        return False
    if found.shape != ds.shape:
        return False
    given, held = image_hashes(ds.images, ds.labels), image_hashes(found.images, found.labels)
    return bool(torch.isin(given, held).all())


def check_pair(train_set: Any, test_set: Any) -> tuple[ImageSet, ImageSet | None]:
    """A (train, test) pair of ImageSets whose test split is scored as the train split's: the
    same classes in the same order (a label is an index into them) and the same image shape
    (a pooling model runs other sizes, at chance, without an error); both sets non-empty (an
    empty test set is None). DataError naming the fix otherwise, a pair of tensors too."""
    if not isinstance(train_set, ImageSet) or not isinstance(test_set, ImageSet | None):
        kinds = f"({type(train_set).__name__}, {type(test_set).__name__})"
        raise DataError(
            f"data {kinds}: a pair must be (train, test) ImageSets (test may be None); for "
            "tensors of images and labels, make one: cnnlab.data.ImageSet(images, labels, "
            "classes, 'my data')"
        )
    if not len(train_set):
        raise DataError(f"{train_set.source}: the training set has no images")
    if test_set is None:
        return train_set, None
    if not len(test_set):
        raise DataError(
            f"{test_set.source}: the test set has no images; pass (train, None) to train "
            "without a test split"
        )
    whose = ("the test set's", "the training set's")
    fix = "give both sets one classes list, in one order"
    check_scored_as(test_set, train_set.classes, train_set.shape, whose, fix, "test")
    return train_set, test_set


FLIP_NOTE = (
    "images were flipped left-right for training and test-time augmentation; if a mirror "
    "changes a class of this data (text, digits, left/right), train again with --no-flip"
)


def resolve_flip(config: TrainConfig, data: Any) -> tuple[TrainConfig, list[str]]:
    """`config` with flip decided by the data set where the user left it None (off for sets a
    mirror changes, see cnnlab.data.flips_by_default), so config.json records what was used;
    and a note for an image folder, whose classes cnnlab cannot judge."""
    if config.flip is not None:
        return config, []
    config = dataclasses.replace(config, flip=flips_by_default(data))
    return config, [FLIP_NOTE] if dataset_name(data) is None else []


def data_notes(*sets) -> dict[str, list[list[str]]]:
    """The files a folder loader skipped (unreadable) or converted, as `[path, why]` lists."""
    sets = [ds for ds in sets if ds is not None]
    return {
        "skipped": [list(item) for ds in sets for item in ds.skipped],
        "converted": [list(item) for ds in sets for item in ds.converted],
    }


def check_steps(n_train: int, config: TrainConfig, world_size: int) -> None:
    """An epoch drops the last short batch: fewer images per rank than a batch is no step."""
    per_rank = n_train // world_size
    if per_rank >= config.batch_size // world_size:
        return
    ranks = f" per rank ({world_size} ranks)" if world_size > 1 else ""
    fix = f"use --batch-size {per_rank * world_size} or less, or more data" if per_rank else ""
    raise ConfigError(
        f"batch_size {config.batch_size} is larger than the {per_rank} training images"
        f"{ranks} left after the validation split, so an epoch would have no step (the last "
        f"short batch is dropped); {fix or 'use more training images'}"
    )


def check_one_image_steps(model: nn.Module, input_shape, per_rank: int) -> None:
    """A batch of one image per rank must pass the model in training mode, checked before a
    step: a BatchNorm with one value per channel (BatchNorm1d after the pooling, BatchNorm2d
    on 1×1 maps) cannot normalise it (torch's 'Expected more than 1 value per channel').
    The image is made on the model's device and in its dtype: a CPU float32 image failed a
    model on CUDA (or in float64) with the device's (dtype's) error instead."""
    if per_rank != 1:
        return
    x = torch.zeros(1, *input_shape, device=device_of(model), dtype=dtype_of(model))
    try:
        with preserved(model, train=True), torch.no_grad():
            model(x)
    except ValueError as error:  # torch's BatchNorm check; anything else is not this rule's
        why = str(error).splitlines()[0]
        raise ConfigError(
            f"a batch of 1 image per step cannot train this model ({why}: a BatchNorm needs "
            "two values per channel); use --batch-size 2 (per rank) or more"
        ) from None


def make_splits(data, choice: ModelChoice, config: TrainConfig, strict: bool, dist, progress=None):
    """(Splits, config) of a run: train/val/test, normalization statistics of the training
    part, checked against the model and the batch size before any step. A model that fails
    channels-last only trains NCHW: config then has channels_last False, and choice.layout
    says why for config.json. progress: as load_data's."""
    train_set, test_set, name = load_data(data, choice.input_shape, strict, progress)
    if config.val_fraction > 0:
        train_part, val_part = train_val_split(train_set, config.val_fraction, config.seed)
    else:
        train_part, val_part = train_set, None
    check_steps(len(train_part), config, dist.world_size)
    refused = check_fit(choice, tuple(train_set.shape), train_set.classes, config)
    if refused is not None:
        config = dataclasses.replace(config, channels_last=False)
        choice.layout = {"channels_last_refused": refused}
    check_one_image_steps(choice.model, train_set.shape, config.batch_size // dist.world_size)
    mean, std = normalization_stats(train_part)
    notes = data_notes(train_set, test_set)
    splits = Splits(train_part, val_part, test_set, mean, std, train_set.classes, name, notes)
    return splits, config
