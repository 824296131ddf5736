"""A trained run, read back from its directory: spec, config, weights, classes, statistics.

    run = load_run("runs/fast")
    x = run.preprocess(images_uint8)          # (B, C, H, W) -> normalized float
    probs = run.model(x).softmax(1)           # (B, classes)

The directory is what `cnnlab.train.train` writes: spec.yaml, config.json, model.safetensors
(weights, loaded with safetensors: nothing is unpickled), metrics.jsonl and checkpoint.*.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.errors import CnnlabError, RunError
from cnnlab.train.checkpoint import CHECKPOINT_TENSORS, MODEL_WEIGHTS, load_weights

REQUIRED_CONFIG = ("data", "classes", "mean", "std", "input_shape")


@dataclass(frozen=True)
class Run:
    """A run directory loaded: `model` is in eval mode with the final weights."""

    path: Path
    spec: Any  # cnnlab.design.spec.Spec
    model: nn.Module
    config: dict[str, Any]  # config.json: TrainConfig fields + data, classes, mean, std, ...

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

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (0..255) or float ([0, 1]) images `(B, C, H, W)` -> normalized float32,
        with the training split's per-channel mean and std."""
        from cnnlab.data import to_float

        if images.dim() == 3:
            images = images.unsqueeze(0)  # one image (C, H, W) -> (1, C, H, W)
        return to_float(images, self.mean, self.std)

    def dataset(self, split: str = "test"):
        """The run's data set `split` as an ImageSet, converted to the model's input shape."""
        from cnnlab.data import load_dataset

        c, h, w = self.input_shape
        try:
            return load_dataset(self.data, split, channels=c, size=(h, w))
        except CnnlabError as error:
            raise RunError(f"{self.path}: cannot load its data {self.data!r}: {error}") from error

    def metrics(self) -> list[dict[str, Any]]:
        """The rows of metrics.jsonl, one per epoch (empty before the first epoch ends)."""
        path = self.path / "metrics.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def __repr__(self) -> str:
        c, h, w = self.input_shape
        return (
            f"Run({str(self.path)!r}, spec={self.spec.name!r}, {c}×{h}×{w}, "
            f"{len(self.classes)} classes, data={self.data!r})"
        )


def load_run(path: str | Path) -> Run:
    """Read a run directory; RunError names the missing or broken file and how to fix it."""
    from cnnlab.design.build import build
    from cnnlab.design.spec import load_spec

    path = Path(path)
    if not path.is_dir():
        raise RunError(
            f"{path} is not a run directory (train one with `cnnlab train --out {path}`)"
        )
    for name in ("spec.yaml", "config.json"):
        if not (path / name).is_file():
            raise RunError(f"{path} has no {name}: it is not a complete run directory")
    try:
        config = json.loads((path / "config.json").read_text())
    except json.JSONDecodeError as error:
        raise RunError(f"{path / 'config.json'} is not valid JSON: {error}") from error
    missing = [k for k in REQUIRED_CONFIG if k not in config]
    if missing:
        raise RunError(f"{path / 'config.json'} lacks {', '.join(missing)}")
    spec = load_spec(path / "spec.yaml")
    weights = path / MODEL_WEIGHTS
    if not weights.is_file():
        hint = (
            f"training did not finish; continue it with `cnnlab train --resume --out {path}`"
            if (path / CHECKPOINT_TENSORS).is_file()  # the commit point, not its sidecar
            else "train the run first"
        )
        raise RunError(f"{path} has no {MODEL_WEIGHTS}: {hint}")
    model = build(spec)
    state = load_weights(weights)
    differ = weight_mismatch(model.state_dict(), state)
    if differ:
        raise RunError(f"{weights} does not match {path / 'spec.yaml'}: {differ}")
    model.load_state_dict(state)
    model.eval()
    return Run(path, spec, model, config)


def weight_mismatch(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> str:
    """'' when `found` fits a model whose state_dict is `expected`, else what differs: the
    first tensor whose shape differs (spec's vs file's), then missing and unexpected names."""
    parts = []
    shapes = [k for k in expected if k in found and expected[k].shape != found[k].shape]
    if shapes:
        k = shapes[0]
        more = f" (and {len(shapes) - 1} more)" if len(shapes) > 1 else ""
        parts.append(
            f"tensor {k} is {_shape(expected[k])} in the spec but {_shape(found[k])} in the "
            f"file{more}"
        )
    for what, names in (
        ("missing from the file", [k for k in expected if k not in found]),
        ("not in the spec", [k for k in found if k not in expected]),
    ):
        if names:
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            parts.append(f"{what}: {shown}")
    return "; ".join(parts)


def _shape(t: torch.Tensor) -> str:
    return "×".join(str(n) for n in t.shape) or "scalar"
