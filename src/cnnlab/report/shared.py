"""One forward of the report's test images for the two parts that read the same ones: the
linear probes' test features and the dead units' activation statistics (the first images,
normalised alike, in the same batches of 256, eval mode). Each part ran a pass of its own."""

from __future__ import annotations

from typing import Any

import torch

from cnnlab import diagnose, inspect
from cnnlab.errors import ReportError
from cnnlab.explain.probe import FeatureReader, class_indices, probed_layers
from cnnlab.inspect import check_images
from cnnlab.report.sources import Sources


def probe_layers(src: Sources) -> list[str] | None:
    """The stages the probes read; None: explain's default, the model's blocks."""
    try:
        layers = src.stages
    except ReportError:
        return None  # no spatial stages (an MLP)
    # one resolution after the stem (an isotropic net): one point, no depth; the model's
    # blocks, as `cnnlab probe`
    return layers if len(layers) >= 2 else None


SHARED_BATCH = 256  # linear_probe's and dead_units' batch size: the batches they read


def shared_counts(probe: int, dead: int, batch: int = SHARED_BATCH) -> bool:
    """Whether one pass over the first max(probe, dead) images, in batches of `batch`, gives
    each reader the very batches its own pass reads: the smaller count ends at the end of
    a batch (or equals the larger)."""
    return probe == dead or min(probe, dead) % batch == 0


def shared_pass(src: Sources, first: torch.Tensor) -> tuple[Any, Any]:
    """(the probes' test features, the dead units' `diagnose.Recording`) from ONE forward of
    each test batch both read (the same first images, normalised alike, in the same
    batches of 256, eval mode): the probes' stage features through explain's
    `FeatureReader` (a `Capture`) and the activation statistics through diagnose's
    `Recording`, where each part ran a pass of its own (MONAI's SwinUNETR, 64 px: 1,000
    forwards of 10-11 ms less). (None, None) where they read different batches or the
    shared pass fails: each part then runs its own, and says why it fails, as before. Run
    by the probes (on their one thread), kept for the dead units (`recorded`). first: the
    probes' first training image, on which linear_probe chooses its layers."""
    try:
        found = _run_shared_pass(src, first)
    except Exception:  # noqa: BLE001 - each part's own pass names the failure
        found = None, None
    vars(src)[_SHARED] = found
    return found


_SHARED = "_facts_shared_pass"  # where Sources keeps the shared pass for the dead units


def recorded(src: Sources) -> Any:
    """The dead units' `diagnose.Recording` from the probes' shared pass, or None."""
    return vars(src).get(_SHARED, (None, None))[1]


def _run_shared_pass(src: Sources, first: torch.Tensor) -> tuple[Any, Any]:
    b = src.budget
    _, x, y = src.test
    probe, dead = min(b.probe_test, len(x)), min(b.diagnose_images, len(x))
    if not shared_counts(probe, dead):
        return None, None
    model = src.model
    names = probed_layers(model, first, probe_layers(src))
    reader = FeatureReader(inspect.unwrap(model), names, x[:1])
    rec = diagnose.Recording(model, frozen_check=True)
    with rec, reader:  # rec first: it freezes the parameters, after noting which train
        for start in range(0, max(probe, dead), SHARED_BATCH):
            xb = check_images(x[start : min(start + SHARED_BATCH, max(probe, dead))], flat=True)
            yb = y[start : start + len(xb)]
            on = start < dead  # the dead units' statistics read this forward
            if on:
                rec.before(xb.to(rec.device))
            inspect.forward(rec.model, xb.to(rec.device))
            if on:
                rec.add(len(xb))
            if start < probe:
                reader.read(xb, class_indices(yb, len(xb)))
    return reader.features(), rec
