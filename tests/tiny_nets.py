"""The source of a tiny classifier for tests that load a model from a file (`--model
nets.py:NAME`): one 3×3 conv of `width` channels, ReLU, GAP and a linear layer to 10
classes, seeded, for 1×H×W images (digits); its spec (`tiny_spec`), and the two-epoch
fp32 config the resume tests train it with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnlab.train import TrainConfig

# two epochs, nothing that changes the arithmetic between sessions (no flip, no TTA, fp32)
RESUME_CONFIG = TrainConfig(epochs=2, batch_size=128, flip=False, tta=False, precision="fp32")


def tiny_net_source(name: str = "make", width: int = 4) -> str:
    """A Python file defining `name()`, which returns the net."""
    return f"""
import torch
from torch import nn


def {name}():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, {width}, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear({width}, 10),
    )
"""


# One nn.ReLU module shared by three conv blocks: its calls are relu, relu #2, relu #3.
SHARED_RELU = """
import torch
from torch import nn


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.c3 = nn.Conv2d(6, 8, 3, stride=2, padding=1)
        self.relu = nn.ReLU()
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = self.relu(self.c1(x))
        x = self.relu(self.c2(x))
        x = self.relu(self.c3(x))
        return self.head(x.mean((2, 3)))


def make():
    torch.manual_seed(0)
    return Shared()
"""


def relu_calls(model: Any, x: Any) -> list:
    """The output of `model.relu` (SHARED_RELU's module) at each of its calls, in order, by a
    plain forward hook under no_grad in eval mode: the truth the call-label tests compare with."""
    import torch

    seen = []
    hook = model.relu.register_forward_hook(lambda m, i, o: seen.append(o.detach().clone()))
    with torch.no_grad():
        model.eval()(x)
    hook.remove()
    return seen


def outputs(module: Any, run: Any) -> tuple[Any, list]:
    """(run(), every output `module` gave while it ran, in order), read by a plain forward
    hook that is removed after: the truth tests compare a layer's reading with."""
    seen: list = []
    hook = module.register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        return run(), seen
    finally:
        hook.remove()


def fired(model: Any, x: Any, keep: Any) -> list[str]:
    """The names of `model`'s modules for which keep(name, module, output) holds, in the order
    their forwards ran on x (plain forward hooks under no_grad, removed after): the truth the
    report's layer tests compare with."""
    import torch

    names: list[str] = []
    hooks = [
        module.register_forward_hook(
            lambda m, args, y, name=name: names.append(name) if keep(name, m, y) else None
        )
        for name, module in model.named_modules()
        if name and not isinstance(module, torch.jit.ScriptModule)  # (they take no hooks)
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return names


def imported_run(tmp_path: Path, source: str, name: str = "make", **options: Any) -> Path:
    """`cnnlab import` of the net `source` defines as `name()`, its fresh weights, into
    tmp_path/run (options: import_run's, e.g. data="digits"); returns the run's path."""
    from safetensors.torch import save_file

    from cnnlab.train.importing import import_run
    from cnnlab.train.source import parse_model_ref

    (tmp_path / "nets.py").write_text(source)
    ref = parse_model_ref(f"{tmp_path / 'nets.py'}:{name}")
    save_file(ref.build().state_dict(), tmp_path / "w.safetensors")
    import_run(ref, tmp_path / "w.safetensors", tmp_path / "run", **options)
    return tmp_path / "run"


# The DDP tests' spec, as YAML text for `cnnlab train`: tiny_spec's net with a BatchNorm, whose
# running statistics are the buffers DDP broadcasts from rank 0.
DDP_SPEC = """\
name: tiny
input: [1, 8, 8]
layers:
  - conv: {filters: 4, kernel: 3, padding: same}
  - batchnorm
  - relu
  - gap
  - linear: 10
"""


def trained_from_code(root: Path, source: str, input_size: str = "1,16,16") -> Path:
    """`cnnlab train --model root/net.py:make` of the net `source` defines, one fp32 epoch on
    digits at `input_size`, into root/run; returns the run's path."""
    from cnnlab.cli import main

    (root / "net.py").write_text(source)
    argv = ["train", "--model", f"{root / 'net.py'}:make", "--data", "digits",
            "--input", input_size, "--epochs", "1", "--no-flip", "--no-tta", "--precision",
            "fp32", "--quiet", "--out", str(root / "run")]  # fmt: skip
    assert main(argv) == 0
    return root / "run"


def noise_png(path: Path, size: int = 16) -> Path:
    """A gray size×size PNG of seeded uniform noise at `path`."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(path)
    return path


def tiny_spec(classes: int = 10, name: str = "tiny") -> dict:
    """The smallest spec the training tests run: one 3×3 conv of 4 filters on 1×8×8 images,
    ReLU, GAP and a linear head (digits: 10 classes)."""
    return {
        "name": name,
        "input": [1, 8, 8],
        "layers": [{"conv": {"filters": 4, "kernel": 3, "padding": "same"}}, "relu", "gap",
                   {"linear": classes}],
    }  # fmt: skip


def free_port() -> int:
    """A TCP port on 127.0.0.1 free at the time of asking, for a DDP group's rendezvous."""
    import socket

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return free.getsockname()[1]


# A torchrun child of a test ends with os._exit(0) once its work is written: at the
# interpreter's exit torch's C++ teardown of gloo/c10d threads aborted now and then
# ("terminate called without an active exception", SIGABRT after both ranks finished: 2 of
# one clean-clone run's ~15 launches, 2 of ~53 looped ones), which torchrun reports as a
# failed rank; the CLI leaves a torchrun rank the same way (cli.entry).


def written_module(folder: Path, source: str, name: str = "nets") -> Any:
    """`source` written to folder/NAME.py and imported afresh: another test's module of the
    same name, imported before, is dropped first, and neither the folder nor the module is
    left on sys.path or in sys.modules after (a torchrun child imports it by path itself)."""
    import importlib
    import sys

    (folder / f"{name}.py").write_text(source)
    sys.path.insert(0, str(folder))
    sys.modules.pop(name, None)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop(name, None)
