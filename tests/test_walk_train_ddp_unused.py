"""DDP training of a model with trainable parameters its output does not use: an auxiliary
head behind the wrapper cnnlab advises for a model returning (logits, aux) in training
(forward returns net(x)[0]). Under torchrun its second step failed in DDP ('Expected to
have finished reduction in the prior iteration'); it now trains, the unused head untouched
as a single process leaves it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import torch
from torch import nn

from cnnlab.train import checkpoint
from cnnlab.train.distributed import ddp_options
from cnnlab.train.fit import unreached_parameters
from tiny_nets import written_module

NETS = textwrap.dedent(
    """
    from torch import nn


    class AuxNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten())
            self.head, self.aux = nn.Linear(512, 10), nn.Linear(512, 10)

        def forward(self, x):
            h = self.body(x)
            return (self.head(h), self.aux(h)) if self.training else self.head(h)


    class Logits(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x)[0] if self.training else self.net(x)
    """
)

CHILD = textwrap.dedent(
    """
    import os
    import sys
    import torch
    torch.set_num_threads(1)
    sys.path.insert(0, sys.argv[2])
    from nets import AuxNet, Logits
    from cnnlab.train import TrainConfig, train

    torch.manual_seed(0)
    config = TrainConfig(epochs=1, batch_size=64, flip=False, tta=False, precision="fp32")
    train(Logits(AuxNet()), "digits", sys.argv[1], config)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the work is done and written: skip torch's C++ teardown at exit (tiny_nets)
    """
)


def _nets(tmp_path):
    return written_module(tmp_path, NETS)


def test_the_unused_parameters_are_those_a_backward_leaves_without_gradient(tmp_path):
    """Truth: a real training-mode loss.backward(), after which exactly those .grad are None."""
    nets = _nets(tmp_path)
    torch.manual_seed(0)
    model = nets.Logits(nets.AuxNet())
    found = unreached_parameters(model, (1, 8, 8))
    assert all(p.grad is None for p in model.parameters())  # the search touched no .grad
    model.train()(torch.randn(4, 1, 8, 8)).sum().backward()
    assert found == [n for n, p in model.named_parameters() if p.grad is None]
    assert found == ["net.aux.weight", "net.aux.bias"]
    assert ddp_options(model, (1, 8, 8)) == {"find_unused_parameters": True}
    plain = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    assert unreached_parameters(plain, (1, 8, 8)) == [] and ddp_options(plain, (1, 8, 8)) == {}


def test_torchrun_trains_a_model_with_an_unused_head(tmp_path):
    nets = _nets(tmp_path)
    (tmp_path / "child.py").write_text(CHILD)
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(tmp_path / "child.py"), str(out), str(tmp_path),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    saved = checkpoint.load_weights(out / "model.safetensors")
    torch.manual_seed(0)
    start = nets.Logits(nets.AuxNet()).state_dict()
    assert torch.equal(saved["net.aux.weight"], start["net.aux.weight"])  # no rank used it
    assert not torch.equal(saved["net.head.weight"], start["net.head.weight"])
