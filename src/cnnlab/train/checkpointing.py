"""The training loop's checkpoints: `save` one (rank 0 writes it; every rank learns at once
whether that failed) and `restore` the loop's position from one. The file format (tensors
and state in one safetensors file, written atomically) is checkpoint.py's."""

from __future__ import annotations

from cnnlab.errors import RunError
from cnnlab.train import checkpoint, distributed, guard
from cnnlab.train.resume import restore as restore_state
from cnnlab.train.resume import session
from cnnlab.train.state import Parts, Position, Sums


def save(parts: Parts, position: Position) -> None:
    """Checkpoint: tensors, position, RNG, metrics rows. Rank 0 writes while the others wait
    in `distributed.together`, which tells them at once if its write failed (a full disk):
    a bare barrier left them there until CNNLAB_DDP_TIMEOUT or rank 0's exit. Every rank
    then holds the position written as `parts.saved`, which a later message names."""
    with distributed.together(parts.dist):
        if parts.run is not None:
            _write(parts, position)
    if parts.out is not None:  # rank 0 wrote it (together raised otherwise)
        parts.saved = (position.epoch, position.step)


def _write(parts: Parts, position: Position) -> None:
    tensors = {f"model.{k}": v for k, v in parts.model.state_dict().items()}
    if parts.ema is not None:
        tensors.update({f"ema.{k}": v for k, v in parts.ema.model.state_dict().items()})
    opt_tensors, opt_rest = checkpoint.split_optimizer_state(parts.optimizer.state_dict())
    tensors.update(opt_tensors)
    state = {
        **position.to_state(),
        "optimizer": opt_rest,
        "rng": checkpoint.rng_state(),
        **session(parts),  # ranks, threads, precision, torch: what a resume compares
        "hashes": parts.run.hashes,  # resume refuses a spec or config edited since
    }
    try:
        parts.run.save_checkpoint(tensors, state, position.rows)
    except RunError as error:
        raise guard.way_on(error, parts.out, (position.epoch, position.step)) from error


def restore(parts: Parts, record: dict) -> tuple[Position, list[str]]:
    """out/checkpoint.* loaded into model, EMA and optimizer -> (position, notes on what
    differs from the session that wrote it)."""
    position_state, notes = restore_state(parts, record)
    position = Position(
        epoch=position_state["epoch"],
        step=position_state["step"],
        sums=Sums(*position_state["partial"]),
        wall=position_state["wall"],
        first_loss=position_state.get("first_loss"),
        rows=position_state["rows"],
    )
    parts.saved = (position.epoch, position.step)
    return position, notes
