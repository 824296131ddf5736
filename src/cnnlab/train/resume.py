"""Resuming a run: its checkpoint loaded into the run's objects, every part checked first.

A checkpoint that does not fit (a tensor of another shape, one missing, no RNG state, an
epoch beyond the run's) or holds NaN/inf is a RunError naming the file, never torch's
traceback nor "the last good checkpoint". What the resumed session does differently from
the one that wrote the checkpoint (world size, threads, precision, torch) changes the
arithmetic, so the results are no longer bit-identical: the resume proceeds (another machine
is a legitimate place to continue), says so in notes and records them in config.json.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from cnnlab.data.folder import FOLDER_TEST_FRACTION, holdout_fingerprint
from cnnlab.data.sets import dataset_name
from cnnlab.errors import RunError
from cnnlab.train import checkpoint
from cnnlab.train.checkpoint import CHECKPOINT_TENSORS, MODEL_WEIGHTS
from cnnlab.train.run_files import spec_differs
from cnnlab.train.rundir import (
    CONFIG,
    METRICS,
    SPEC,
    read_config,
    read_metrics,
    run_hashes,
    weight_mismatch,
)
from cnnlab.train.source import code_name

NEEDED = ("epoch", "step", "partial", "wall", "optimizer", "rng")


def restore(parts: Any, record: dict | None = None) -> tuple[dict, list[str]]:
    """Load out/checkpoint.* into parts.model, parts.ema and parts.optimizer and set the RNG
    states; return (the loop's position state with "rows", notes on what changed).
    record: the model's source record as this session built it (`_code_changed`)."""
    out = parts.out
    path = out / CHECKPOINT_TENSORS
    if not path.is_file():  # stopped before its first checkpoint: nothing to lose, start over
        _check_nothing_trained(out, path)
        fresh = {"epoch": 0, "step": 0, "partial": [0.0, 0, 0, 0.0], "wall": 0.0, "rows": []}
        return fresh, ["there was no checkpoint yet: the run started again from its beginning"]
    tensors, state = _read(out, path)
    _check_hashes(state, out, path)
    epochs, steps = parts.config.epochs, parts.steps_per_epoch
    if not (0 <= state["epoch"] <= epochs and 0 <= state["step"] <= steps):
        saved_world, world = state.get("world_size"), parts.dist.world_size
        why = (
            f"it was saved with world size {saved_world} (epochs of other lengths than with "
            f"{world}): resume it with {saved_world} ranks"
            if saved_world not in (None, world)
            else "it belongs to another run: start again with --force"
        )
        raise RunError(
            f"{path} claims epoch {state['epoch']}, step {state['step']} of a run of {epochs} "
            f"epochs of {steps} steps; {why}"
        )
    _load(parts.model, checkpoint.prefixed(tensors, "model"), path, "model")
    if parts.ema is not None:
        _load(parts.ema.model, checkpoint.prefixed(tensors, "ema"), path, "ema")
    opt = {k: v.to(parts.dist.device) for k, v in tensors.items() if k.startswith("optimizer.")}
    try:
        joined = checkpoint.join_optimizer_state(opt, state["optimizer"])
        parts.optimizer.load_state_dict(joined)
        checkpoint.set_rng_state(state["rng"])
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as error:
        raise RunError(
            f"{path}: its optimizer or RNG state does not fit this run ({type(error).__name__}"
            f": {str(error).splitlines()[0] if str(error) else 'malformed'}); start again "
            "with --force"
        ) from None
    rows = state.get("metrics")
    if rows is None:  # a checkpoint written before the rows rode in it
        rows = [r for r in read_metrics(out) if r.get("epoch", 0) <= state["epoch"]]
    notes = _code_changed(parts.out, record) + _changes(state, parts)
    if notes and parts.run is not None:
        parts.run.append_config(
            "resumes",
            {"epoch": state["epoch"], "step": state["step"], "changed": notes},
        )
    return {**state, "rows": rows}, notes


def _read(out, path) -> tuple[dict, dict]:
    """The checkpoint's (tensors, state): readable, finite, every NEEDED part in it."""
    try:
        tensors, state = checkpoint.load_checkpoint(out)  # NaN/inf refused, naming the file
    except RunError as error:
        if _finished(out):
            why = str(error).removesuffix(f"; {checkpoint.START_AGAIN}")
            raise RunError(f"cannot resume {out}: {why}; {_nothing_to_resume(out)}") from None
        raise
    missing = [k for k in NEEDED if k not in state]
    if missing:
        raise RunError(
            f"{path}: its state lacks {', '.join(missing)}, so the run cannot continue "
            "exactly; start it again with --force"
        )
    return tensors, state


def _finished(out) -> bool:
    """Whether the run's training is finished: model.safetensors, written at its end, whole.
    Its checkpoint missing or unusable then leaves nothing to resume, and the --force a
    checkpoint's error advises would delete the trained weights (`_nothing_to_resume`)."""
    weights = out / MODEL_WEIGHTS
    if not weights.is_file():
        return False
    try:
        checkpoint.load_weights(weights)
    except RunError:
        return False
    return True


def _nothing_to_resume(out) -> str:
    return (
        f"its training is finished ({MODEL_WEIGHTS} is whole), so there is nothing to resume: "
        f"eval, predict and report read its weights (cnnlab eval {out}); --force would delete "
        "them and train again"
    )


def _check_nothing_trained(out, path) -> None:
    """No checkpoint is 'stopped before its first' only when nothing was trained: a run
    whose checkpoint was deleted (to save space) was trained again from its beginning,
    overwriting its weights and metrics, with a note saying there was no checkpoint yet."""
    rows = read_metrics(out)
    if rows or (out / MODEL_WEIGHTS).is_file():
        done = f"{len(rows)} epoch{'s' if len(rows) != 1 else ''} in {METRICS}" if rows else ""
        done = done or f"its {MODEL_WEIGHTS}"
        said = f"cannot resume {out}: {path.name} is missing though the run has trained ({done})"
        if _finished(out):
            raise RunError(f"{said}, and {_nothing_to_resume(out)}")
        raise RunError(
            f"{said}, so a resume would train it again from its beginning over them; restore "
            "the checkpoint, or start again with --force"
        )


def check_same_data(out, splits: Any) -> None:
    """A resume trains on the data the run started on. Its name alone does not say so: a
    folder (or an IDX file) can change under the same path, and the resumed epochs then
    learnt other images, normalized by statistics other than config.json's, which every
    later command uses. The classes, the files a folder's test hold-out is drawn from and
    the training part's exact mean and std (a 256-bin histogram, normalization_stats) are
    compared with config.json's; RunError if they differ."""
    config = read_config(out)
    then_classes = [str(c) for c in config.get("classes", [])]
    now_classes = [str(c) for c in splits.classes]
    if then_classes != now_classes:
        what = f"its classes were {', '.join(then_classes)}; now {', '.join(now_classes)}"
    else:
        what = _changed_holdout(config) or _changed_stats(config, splits)
    if what:
        older = ""  # a folder run made before 'holdout' was recorded: its images came in
        if "holdout" not in config and _is_folder(config.get("data")):  # class order then
            older = (
                ", or the run was made by an earlier cnnlab, which ordered a folder's images "
                "by class and so drew another validation split"
            )
        raise RunError(
            f"cannot resume {out}: its data {config.get('data')!r} has changed since the run "
            f"started ({what}){older}; restore that data, or start a new run (--force)"
        )


def _is_folder(data: Any) -> bool:
    return isinstance(data, str) and dataset_name(data) is None and Path(data).is_dir()


def _changed_holdout(config: dict) -> str:
    """'' unless the folder's files are not those its test hold-out was drawn from
    (config.json's "holdout", `Run.dataset` checks it too): a file added, removed or renamed
    redraws the hold-out, so the resumed epochs and the final test would mix the run's test
    and training images, and every later command refuses the run."""
    then = config.get("holdout")
    if then is None or holdout_fingerprint(config.get("data")) == then:
        return ""
    return (
        f"files added, removed or renamed: its {FOLDER_TEST_FRACTION:.0%} hold-out of test "
        "images would be drawn anew and include images the run trained on"
    )


def _changed_stats(config: dict, splits: Any) -> str:
    """'' when the training part's mean and std are config.json's, else which differs."""
    for key in ("mean", "std"):
        then, now = config.get(key), [float(v) for v in getattr(splits, key)]
        same = isinstance(then, list) and len(then) == len(now)
        # exact sums in float64: a tolerance only for another summation order
        if not (same and all(map(math.isclose, then, now))):
            shown = ", ".join(f"{v:.6g}" for v in now)
            return f"the training images' {key} was {then}, now [{shown}]"
    return ""


def _code_changed(out, record: dict | None) -> list[str]:
    """A note when the model's code file hashes otherwise than config.json records (a change
    accepted with CNNLAB_ACCEPT_CHANGED_CODE): the weights then come from two versions of the
    code, which config.json's record alone did not say."""
    then = read_config(out).get("model") or {}
    if not record or record.get("kind") != "code" or then.get("sha256") in (None, record["sha256"]):
        return []
    return [
        f"resumed with {record['file']} changed since the run started (sha256 "
        f"{then['sha256'][:12]} then, {record['sha256'][:12]} now): the weights come from both"
    ]


def _check_hashes(state: dict, out, path) -> None:
    """spec.yaml and config.json as they were when the checkpoint was saved (every rank
    checks, reading the files, so none waits for a rank that gave up). Both differing is
    another run's checkpoint put here far more often than two files edited; one differing
    names the edit, and the copy as the other way it comes about."""
    spec = out / SPEC
    config = read_config(out)
    now = run_hashes(spec.read_text() if spec.is_file() else None, config)
    differ = [
        (key, name)
        for key, name in (("spec_sha256", SPEC), ("config_sha256", CONFIG))
        if state.get("hashes", {}).get(key) not in (None, now[key])
    ]
    model = config.get("model") or {}
    if differ and differ[0][0] == "spec_sha256" and model.get("kind") == "code":
        raise RunError(_not_the_codes(out, path, model, state["hashes"]["spec_sha256"]))
    if len(differ) == 2:
        raise RunError(
            f"{path} is another run's checkpoint: neither {out / SPEC} nor {CONFIG} is the one "
            "it was saved with; put this run's own checkpoint back to resume (or restore both "
            "files if they were edited), or start again with --force"
        )
    if differ:
        name = differ[0][1]
        raise RunError(
            f"{out / name} was edited since {path.name} was saved, or the checkpoint is another "
            "run's; restore the file (or put this run's own checkpoint back) to resume, or start "
            "again with --force"
        )


def check_spec_unchanged(out) -> None:
    """RunError when spec.yaml hashes otherwise than the run's checkpoint was saved with: for
    a spec.yaml that no longer parses (cut short, broken, emptied), what to say is that it
    changed since the run started, and to restore it; the parser's advice ('add e.g. input:
    ...') would have the user rebuild the run's spec by hand. Nothing is said without a
    readable checkpoint recording the hash: the parser's own error speaks then."""
    spec = Path(out) / SPEC
    if spec_differs(out, checkpoint.saved_hashes(out).get("spec_sha256")):
        raise RunError(
            f"{spec} was changed since the run started: it no longer reads as a spec, and its "
            f"SHA-256 differs from the one {CHECKPOINT_TENSORS} was saved with; restore it to "
            "resume, or start again with --force"
        )


def _not_the_codes(out, path, model: dict, then: str) -> str:
    """Why the spec hash of a run whose model is code differs: such a run has no spec.yaml
    (its hash is that of no text), so either its checkpoint was saved by a run built from a
    spec, or a spec.yaml was put in the directory since."""
    named = code_name(str(model.get("reference")), model.get("file"))
    code = f"its model is built by the code {named}"
    if then == run_hashes(None, {})["spec_sha256"]:  # saved by this run: spec.yaml is new
        return (
            f"{out / SPEC} is not this run's: {code}, and a run from code has no {SPEC}; "
            f"remove it to resume"
        )
    return (
        f"{path} was saved by a run built from a spec ({SPEC}), but {out} is not: {code}; "
        "the checkpoint is another run's: put this run's back, or start again with --force"
    )


def _load(module: torch.nn.Module, found: dict, path, what: str) -> None:
    differ = weight_mismatch(module.state_dict(), found)
    if differ:
        raise RunError(
            f"{path}: its {what} tensors do not fit the run's model: {differ}; start the run "
            "again with --force"
        )
    module.load_state_dict(found)


def session(parts: Any) -> dict[str, Any]:
    """Where this process computes, as a checkpoint records it: ranks, threads, precision and
    torch's version, what a resume compares (`_changes`)."""
    return {
        "world_size": parts.dist.world_size,
        "threads": torch.get_num_threads(),
        "precision": "bf16" if parts.amp else "fp32",
        "torch": torch.__version__,
    }


def _changes(state: dict, parts: Any) -> list[str]:
    """What differs from the session that saved the checkpoint (its `session` record; for
    checkpoints older than precision and torch in it, config.json's first session). A resume
    elsewhere is legitimate, so each is a note, not a refusal: the arithmetic changes, the run
    continues."""
    config = read_config(parts.out)
    then = {"precision": config.get("precision_used"), "torch": config.get("torch"), **state}
    now = session(parts)
    names = {"world_size": "world size", "threads": "threads", "precision": "precision"}
    return [
        f"resumed with {names.get(key, key)} {now[key]} where the checkpoint was saved with "
        f"{then[key]}: the results {'may' if key == 'torch' else 'will'} differ from an "
        "uninterrupted run's"
        for key in now
        if then.get(key) is not None and then[key] != now[key]
    ]
