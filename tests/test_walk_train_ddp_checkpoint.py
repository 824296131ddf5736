"""DDP training of a model with a reentrant activation checkpoint
(torch.utils.checkpoint(..., use_reentrant=True)). Its block's parameters get their
gradients in a nested backward, which DDP's find_unused_parameters marks ready a second
time: with an unused auxiliary head too (the search turned that option on), the first
backward under torchrun failed ('Expected to mark a variable ready only once'), and so did
a block checkpointed twice with DDP's default, and a checkpointed plain function with an
unused head (whose parameters the search cannot name: DDP's default). `distributed.wrap`
now gives such a model static_graph=True. Truth: torch's own parameters, equal across the
two ranks, and equal (to float rounding) to one process's training on the whole batch;
the unused head keeps its first weights, as one process leaves it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from cnnlab.train import checkpoint
from tiny_nets import written_module

NETS = textwrap.dedent(
    """
    from torch import nn
    from torch.utils.checkpoint import checkpoint


    class CheckpointAux(nn.Module):
        '''A reentrant-checkpointed block after a trainable stem, and an auxiliary head the
        training-mode logits do not use.'''

        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(1, 4, 3, padding=1)
            self.block = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
            self.head, self.aux = nn.Linear(4, 10), nn.Linear(4, 10)

        def forward(self, x):
            h = checkpoint(self.block, self.stem(x), use_reentrant=True).mean((2, 3))
            return (self.head(h), self.aux(h))[0]


    class CheckpointTwice(CheckpointAux):
        '''The same block checkpointed twice (its parameters reach two nested backwards).'''

        def forward(self, x):
            h = checkpoint(self.block, self.stem(x), use_reentrant=True)
            return self.head(checkpoint(self.block, h, use_reentrant=True).mean((2, 3)))


    class CheckpointFunction(CheckpointAux):
        '''A plain function checkpointed (whose parameters the graph cannot name).'''

        def forward(self, x):
            run = lambda t: self.block(t)  # noqa: E731
            h = checkpoint(run, self.stem(x), use_reentrant=True).mean((2, 3))
            return (self.head(h), self.aux(h))[0]
    """
)

CHILD = textwrap.dedent(
    """
    import os
    import sys

    import torch
    import torch.distributed as torch_dist
    from torch import nn

    torch.set_num_threads(1)
    sys.path.insert(0, sys.argv[2])
    from nets import CheckpointAux, CheckpointFunction, CheckpointTwice
    from cnnlab.train import TrainConfig, distributed, train

    torch_dist.init_process_group("gloo")
    rank = torch_dist.get_rank()
    data = torch.load(os.path.join(sys.argv[2], "batch.pt"))
    x, y = data["x"][rank::2], data["y"][rank::2]  # this rank's half of the batch
    made = {"aux": CheckpointAux, "twice": CheckpointTwice, "function": CheckpointFunction}
    for name, make in made.items():
        torch.manual_seed(0)
        model = make()
        net = distributed.wrap(model, distributed.Dist(rank, 2), (1, 8, 8))
        optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.5)
        for _ in range(3):
            optimizer.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(net(x), y).backward()
            optimizer.step()
        torch.save(model.state_dict(), os.path.join(sys.argv[2], f"{name}{rank}.pt"))
    torch.manual_seed(0)
    config = TrainConfig(epochs=1, batch_size=64, flip=False, tta=False, precision="fp32")
    result = train(CheckpointAux(), "digits", sys.argv[1], config)
    torch.save(result["model"].state_dict(), os.path.join(sys.argv[2], f"train{rank}.pt"))
    if rank == 0:
        with open(os.path.join(sys.argv[2], "notes.txt"), "w") as notes:
            notes.write(" ".join(result["notes"]))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the work is done and written: skip torch's C++ teardown at exit (tiny_nets)
    """
)


def _nets(tmp_path):
    return written_module(tmp_path, NETS)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """The torchrun run: (nets, its directory, torchrun's CompletedProcess)."""
    tmp_path = tmp_path_factory.mktemp("ddp_checkpoint")
    nets = _nets(tmp_path)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(8, 1, 8, 8, generator=generator)
    y = torch.randint(0, 10, (8,), generator=generator)
    torch.save({"x": x, "y": y}, tmp_path / "batch.pt")
    (tmp_path / "child.py").write_text(CHILD)
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(tmp_path / "child.py"), str(tmp_path / "run"), str(tmp_path),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    return nets, tmp_path, done


def _single(make, path):
    """`make()`'s weights after the same 3 steps in one process, on the whole batch."""
    data = torch.load(path / "batch.pt")
    torch.manual_seed(0)
    model = make()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.5)
    for _ in range(3):
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(data["x"]), data["y"]).backward()
        optimizer.step()
    return model.state_dict()


@pytest.mark.parametrize("name", ["aux", "twice", "function"])
def test_ddp_steps_match_one_process(ranks, name):
    nets, path, done = ranks
    assert done.returncode == 0, done.stderr[-3000:]
    made = {"aux": nets.CheckpointAux, "twice": nets.CheckpointTwice}
    make = {**made, "function": nets.CheckpointFunction}[name]
    first, second = (torch.load(path / f"{name}{rank}.pt") for rank in (0, 1))
    single = _single(make, path)
    torch.manual_seed(0)
    start = make().state_dict()
    for key in single:
        assert torch.equal(first[key], second[key]), key
        torch.testing.assert_close(first[key], single[key], rtol=1e-5, atol=1e-6)
    # the head no rank uses: no gradient, so not even AdamW's weight decay moved it
    assert torch.equal(first["aux.weight"], start["aux.weight"])
    assert not torch.equal(first["block.0.weight"], start["block.0.weight"])


def test_torchrun_trains_it_and_the_ranks_agree(ranks):
    nets, path, done = ranks
    assert done.returncode == 0, done.stderr[-3000:]
    first, second = (torch.load(path / f"train{rank}.pt") for rank in (0, 1))
    saved = checkpoint.load_weights(path / "run" / "model.safetensors")
    torch.manual_seed(0)
    start = nets.CheckpointAux().state_dict()
    for key, value in first.items():
        assert torch.equal(value, second[key]) and torch.equal(value, saved[key]), key
    assert torch.equal(saved["aux.weight"], start["aux.weight"])  # no rank used it
    assert not torch.equal(saved["block.0.weight"], start["block.0.weight"])
    said = (path / "notes.txt").read_text()
    assert "DDP trained it with static_graph=True" in said and "use_reentrant=False" in said
