"""What a run directory holds: its file names, which of them cnnlab wrote, the hashes that
tie the weights to spec.yaml and config.json, and the readers of its JSON records.

rundir.py writes a run, run.py opens one; both take every name from here.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import re
import shlex
from pathlib import Path
from typing import Any

from cnnlab.data.sets import dataset_name
from cnnlab.errors import ConfigError, RunError
from cnnlab.train.checkpoint import CHECKPOINT_STATE, CHECKPOINT_TENSORS, MODEL_WEIGHTS
from cnnlab.train.config import TrainConfig

SPEC, CONFIG, METRICS = "spec.yaml", "config.json", "metrics.jsonl"
REPORT, EVALUATION, LOCK = "report.html", "evaluation.json", ".cnnlab.lock"
# What cnnlab writes into a run (train, import, report); --force and demo delete these and
# nothing else.
WRITTEN = (SPEC, CONFIG, METRICS, MODEL_WEIGHTS, CHECKPOINT_TENSORS, CHECKPOINT_STATE, REPORT)
WRITTEN += (EVALUATION,)
WRITTEN_DIRS = ("figures", "samples")  # the report's figures, the demo's sample images
REQUIRED_CONFIG = ("data", "classes", "mean", "std", "input_shape")
UNHASHED = ("resumes",)  # config.json keys that may change after training (appended records)
HASHES_KEY = "cnnlab.run"  # model.safetensors metadata: {"spec_sha256", "config_sha256"}


# --- what a directory is -------------------------------------------------------------------


def is_run(path: Path) -> bool:
    """True when cnnlab wrote `path`: it holds cnnlab's lock file, or a config.json with a
    run's keys (runs written before the lock file existed)."""
    if (path / LOCK).is_file():
        return True
    try:
        config = json.loads((path / CONFIG).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and all(k in config for k in REQUIRED_CONFIG)


def writer(path: Path) -> str | None:
    """The PID of the cnnlab process writing the run `path` now (it holds the lock file's
    flock, RunDir), or None when none does. A run without model.safetensors that has a
    writer is still training, and --resume would be refused."""
    try:
        fd = os.open(path / LOCK, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
    except OSError:  # a file system without flock: nothing can be told
        return None
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def temp_files(path: Path) -> list[Path]:
    """Temporary files a killed atomic write left (`.<name>.tmp-<pid>@<host>` of a run file)."""
    return [p for name in WRITTEN for p in path.glob(f".{name}.tmp-*")]


def worth_keeping(path: Path) -> list[Path]:
    """What a new run in `path` could lose: all but cnnlab's lock and temp files, and beside
    the lock a spec.yaml without config.json (a run killed between its first writes)."""
    ours = {LOCK, *(p.name for p in temp_files(path))}
    if (path / LOCK).is_file() and not (path / CONFIG).is_file():  # a user's spec.yaml stays
        ours.add(SPEC)
    return [p for p in path.iterdir() if p.name not in ours]


def run_hashes(spec_text: str | None, config: dict[str, Any]) -> dict[str, str]:
    """{"spec_sha256", "config_sha256"}: SHA-256 of spec.yaml's text and of config.json's
    fields in canonical JSON (sorted keys, the appended UNHASHED keys left out)."""
    fields = {k: v for k, v in config.items() if k not in UNHASHED}
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return {
        "spec_sha256": hashlib.sha256((spec_text or "").encode()).hexdigest(),
        "config_sha256": hashlib.sha256(text.encode()).hexdigest(),
    }


def spec_differs(directory: str | Path, recorded: str | None) -> bool:
    """Whether RUN/spec.yaml hashes otherwise than `recorded`, the spec_sha256 a weights or
    checkpoint file was saved with (False without a record or a readable spec.yaml: other
    checks speak then)."""
    try:
        text = (Path(directory) / SPEC).read_text(errors="replace")
    except OSError:
        return False
    return recorded is not None and recorded != run_hashes(text, {})["spec_sha256"]


# --- its records ---------------------------------------------------------------------------


def read_config(run: Any) -> dict[str, Any]:
    """RUN/config.json as a dict (RunError naming the file when it is no JSON object)."""
    path = Path(getattr(run, "path", run)) / CONFIG
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunError(f"{path.parent} has no {CONFIG}: it is not a complete run") from None
    except OSError as error:  # a directory in its place, no permission, a disk error
        raise RunError(f"cannot read {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise RunError(
            f"{path} is not valid JSON ({error}): it was changed after training (cnnlab "
            "writes it whole, in one rename); put back a copy of the run's own"
        ) from None
    if not isinstance(config, dict):
        raise RunError(f"{path} must hold a JSON object, not {type(config).__name__}")
    return config


def images_per_second(rows: list[dict[str, Any]]) -> float:
    """Training throughput over the whole run: Σ images ÷ Σ seconds of the epochs' steps
    (images of an epoch = its img_per_s × seconds). Not the mean of the epochs' rates, which
    a short fast epoch inflates."""
    seconds = sum(r.get("seconds", 0.0) for r in rows)
    images = sum(r.get("img_per_s", 0.0) * r.get("seconds", 0.0) for r in rows)
    return images / seconds if seconds > 0 else 0.0


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The rows of RUN/metrics.jsonl, one per epoch ([] before the first epoch ends);
    RunError naming the file and line that is not a JSON object."""
    file = Path(path) / METRICS
    if not file.is_file():
        return []
    rows = []
    for number, line in enumerate(file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as error:
            raise RunError(
                f"{file} line {number} is not valid JSON ({error}): cnnlab train --resume "
                f"--out {file.parent} writes the rows again from the run's checkpoint"
            ) from None
        if not isinstance(row, dict):
            raise RunError(f"{file} line {number} is not a JSON object")
        rows.append(row)
    return rows


def data_gone(data: Any) -> str:
    """'' unless `data` names a data directory (config.json records one by its absolute
    path) that is gone, as in a run copied to another machine or data moved since; then how
    to bring it back, for the end of a message."""
    if not isinstance(data, str) or not Path(data).is_absolute() or Path(data).exists():
        return ""
    return (
        f"; {data} no longer exists (a run records its data directory by its absolute path): "
        f"put the data back there, link it there (ln -s NEW_PLACE {data}), or give eval, "
        "probe, visualize, report or serve --data NEW_PLACE"
    )


def data_option(config: dict[str, Any]) -> str:
    """The `--data` of a command line for the run's data, as the shell keeps it; NAME|DIR
    for a run trained on images given in Python, whose recorded name is their source text
    ('my arrays'), which no command reads."""
    if config.get("data_in_memory"):
        return "NAME|DIR"
    return shlex.quote(str(config["data"]))


def input_option(config: dict[str, Any]) -> str:
    """' --input C,H,W' of the images the run's model took (config.json's input_shape), for
    an import's command: without it, import takes the data's own size, which a folder of
    mixed sizes does not have and a run that resized its data does not use."""
    return f" --input {','.join(map(str, config['input_shape']))}"


def import_inputs(config: dict[str, Any]) -> str:
    """The --classes, --mean, --std and --input an import without --data was given."""
    join = lambda values: ",".join(map(str, values))  # noqa: E731
    return (
        f"--classes {shell_word(join(config['classes']))} --mean {join(config['mean'])} "
        f"--std {join(config['std'])} --input {join(config['input_shape'])}"
    )


def shell_word(text: str) -> str:  # act='gelu' -> "act='gelu'", as the shell keeps it
    return text if re.fullmatch(r"[\w=.,+-]+", text) else f'"{text}"'


def check_given_model(path: Path, record: dict[str, Any], model: Any) -> None:
    """RunError for `load_run(path, model=...)` of a run that builds its own model (a spec,
    the user's code): the weights go to the model it builds, never to the one passed."""
    if record.get("kind") == "module" or model is None:
        return
    made = SPEC if record.get("kind", "spec") == "spec" else "its model's code"
    raise RunError(
        f"{path} builds its model from {made}: the model passed would not get the weights; "
        "open it without model= and use run.model"
    )


def unreadable_data(path: Path, config: dict[str, Any]) -> None:
    """RunError for a run trained on images given in Python (`inputs.memory_record`): its
    data name is their `source` text, which names no data a command can read again."""
    if config.get("data_in_memory"):
        raise RunError(
            f"{path} was trained on images given in Python (an ImageSet, {config['data']!r}"
            f"{_not_named(config['data'])}), which no command can read again; evaluate images "
            "of its classes with cnnlab.train.evaluate.evaluate(run, ImageSet(...))"
        )


def _not_named(data: Any) -> str:
    """For an ImageSet whose source text names a data set or folder: its images are not the
    ones that name reads (`inputs.memory_record`), so the name would score other images."""
    named = isinstance(data, str) and names_data(data)
    return f", not as the train and test splits {data!r} reads" if named else ""


def names_data(text: str) -> bool:
    """Whether `text` is what `load_dataset` reads: a data set's name or a directory."""
    return dataset_name(text) is not None or Path(text).expanduser().is_dir()


def check_classes(
    path: Path, config: dict[str, Any], found: tuple[str, ...], named: bool, given: str = ""
) -> None:
    """RunError unless the data read again holds the run's classes, in its order: a label
    is an index into them, and DIR/train + DIR/test keep no hold-out record that would catch
    a class folder renamed or added since. A named data set (`named`) has fixed classes:
    their count is checked, the names a run records for them are its own, as are those
    `cnnlab import --classes` gives a folder's (`data_classes` keeps the folder's). given:
    the folder as the user gave it with --data (`Run.with_data`), named in its place."""
    held = folder_classes(config)
    if (len(found) == len(held)) if named else list(found) == held:
        return
    now = f"--data {given} holds" if given else f"{path}: its data {config['data']} now holds"
    said = (
        f"{now} the classes {', '.join(found)}; {'the run' if not given else path} was "
        f"trained on {', '.join(held)}{_called(config)}, and labels are indices into them"
    )
    if named:  # only a config.json edited since gets here: the set's classes do not change
        raise RunError(f"{said}: give the run's config.json the classes of {config['data']}")
    raise RunError(
        f"{said}: give a folder whose class folders are named {', '.join(held)}, in that "
        "order (restore any renamed since), and keep other classes in another folder"
    )


def folder_classes(config: dict[str, Any]) -> list[str]:
    """The class folder names a run's data holds, in label order: the run's classes, or
    the folder's own where `cnnlab import --classes` named them otherwise (`data_classes`)."""
    return config.get("data_classes") or config["classes"]


def _called(config: dict[str, Any]) -> str:
    """What an imported run calls its folder's classes, where --classes renamed them: the
    folder is asked for by its class folders' names, which are not the run's."""
    if not config.get("data_classes") or config["data_classes"] == config["classes"]:
        return ""
    return (
        f" (the class folders it was imported from, which it calls {', '.join(config['classes'])})"
    )


def check_config(config: dict[str, Any], path: Path) -> None:
    """Every field a later command relies on, checked; RunError naming file and field."""
    where = path / CONFIG
    missing = [k for k in REQUIRED_CONFIG if k not in config]
    if missing:
        raise RunError(f"{where} lacks {', '.join(missing)}")
    shape, classes = config["input_shape"], config["classes"]
    if not (isinstance(shape, list) and len(shape) == 3 and all(_count(n) for n in shape)):
        raise RunError(f"{where}: input_shape must be [C, H, W] of positive integers: {shape}")
    if not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise RunError(f"{where}: classes must be a list of names, got {classes!r}")
    if len(set(classes)) != len(classes) or len(classes) < 2:
        raise RunError(f"{where}: classes must be at least two distinct names: {classes}")
    for key in ("mean", "std"):
        values = config[key]
        if not (isinstance(values, list) and len(values) == shape[0]) or not all(
            _number(v) for v in values
        ):
            raise RunError(f"{where}: {key} must be {shape[0]} finite numbers, got {values!r}")
    # 0 is a constant channel's (a folder whose images have no green): training writes it and
    # to_float divides such a channel by 1; every command refused the run it had just made
    if not all(v >= 0 for v in config["std"]):
        raise RunError(
            f"{where}: std must be 0 or more (a standard deviation), got {config['std']}"
        )
    if not isinstance(config["data"], str | None):
        raise RunError(f"{where}: data must be a data set name or directory: {config['data']!r}")
    if "epochs" in config:  # a trained run (an imported one has no TrainConfig)
        try:
            TrainConfig.from_dict(config)
        except (ConfigError, TypeError) as error:
            raise RunError(f"{where}: {error}") from None


def _count(n: Any) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and n > 0


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
