"""Mixed precision as the trainer runs it: bf16 autocast around an fp32 model.

Why no separate bf16 model with fp32 master weights (benchmarks/train_throughput.py has the
measurement): on the CPU, autocast already hands BatchNorm, ReLU and max-pool bf16
activations and returns bf16, with BatchNorm's parameters and running statistics in fp32,
so there is no fp32 round trip of the activations to remove. These tests hold PyTorch to
that, and the trainer to fp32 weights, gradients, optimizer state and checkpoints.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

import cnnlab
from cnnlab.data import load_dataset
from cnnlab.train import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")

ELEMENTWISE = (nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d)


def _autocast_forward(model: nn.Module, x: torch.Tensor):
    """model(x) under CPU bf16 autocast, recording (layer kind, input dtype, output dtype)."""
    seen = []
    hooks = [
        m.register_forward_hook(
            lambda m, i, o: seen.append((type(m).__name__, i[0].dtype, o.dtype))
        )
        for m in model.modules()
        if isinstance(m, ELEMENTWISE)
    ]
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x)
    finally:
        for h in hooks:
            h.remove()
    return logits, seen


def test_autocast_keeps_batchnorm_relu_and_pool_in_bf16():
    torch.manual_seed(0)
    model = cnnlab.build("fast").to(memory_format=torch.channels_last).train()
    x = torch.randn(4, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    logits, seen = _autocast_forward(model, x)
    kinds = [name for name, _, _ in seen]
    assert kinds.count("BatchNorm2d") == 6 and kinds.count("MaxPool2d") == 2
    assert all(i == o == torch.bfloat16 for _, i, o in seen), seen
    # BatchNorm's own tensors stay fp32: the statistics a checkpoint stores
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert m.weight.dtype == m.running_var.dtype == torch.float32
    loss = F.cross_entropy(logits.float(), torch.arange(4))
    loss.backward()
    assert all(p.grad.dtype == torch.float32 for p in model.parameters())


def test_autocast_step_follows_the_fp32_step():
    """Same start, same batches: bf16 autocast's losses stay within bf16 rounding of fp32's
    over a few SGD steps (they would part at once if a layer ran in the wrong precision)."""
    torch.manual_seed(0)
    x = torch.randn(32, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (32,))
    losses = {}
    for amp in (False, True):
        torch.manual_seed(1)
        model = cnnlab.build("fast").to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
        losses[amp] = []
        for _ in range(5):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                loss = F.cross_entropy(model(x).float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses[amp].append(loss.item())
    assert losses[True] == pytest.approx(losses[False], rel=0.03)
    assert losses[False][-1] < losses[False][0]  # the steps did learn, so the test can fail


def test_bf16_run_keeps_fp32_weights_and_checkpoints(tmp_path):
    ds = load_dataset("fashion-mnist", "train").subset(torch.arange(256))
    config = TrainConfig(epochs=1, batch_size=64, val_fraction=0.0, tta=False, precision="bf16")
    result = train("fast", ds, tmp_path / "run", config)
    assert all(
        p.dtype == torch.float32
        for p in result["model"].state_dict().values()
        if p.is_floating_point()
    )
    for name in ("model.safetensors", "checkpoint.safetensors"):
        tensors = load_file(tmp_path / "run" / name)
        floats = [t.dtype for t in tensors.values() if t.is_floating_point()]
        assert floats and set(floats) == {torch.float32}, name
