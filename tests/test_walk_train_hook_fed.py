"""Models whose forward reads what their own forward hook stored (`self.feat = o` in a hook,
the feature-hook / FPN pattern). Train's check forwards ran with the user's hooks set aside
(3a33d2e) and were run again with them only when that forward raised or gave no tensor:
one reading a feature an earlier no-grad forward left got logits with no gradient and
train refused the model ('its forward runs under torch.no_grad()'), untrue; a model that
needs its hook to run had no walk, so DDP got its default options (the aux head it does
not use then failed the second step, 'Expected to have finished reduction') and the
untrained-layer note went quiet. Now the check forward is run again with the hooks, and
that answer taken, when the hook-free one has no gradient or leaves a trainable parameter
out (`fit._check_forward`). Also: a user's recorder written as an nn.Module subclass is
set aside like any hook of the user's (`unhooked.torch_own`). Truth: torch's own backward
(exactly the parameters with .grad None), two gloo ranks training under torchrun against
one process, and hook call counts."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from cnnlab.train import TrainConfig, train
from cnnlab.train.distributed import ddp_options
from cnnlab.train.fit import ModelChoice, unreached_parameters, untrained_note
from tiny_nets import written_module

pytestmark = pytest.mark.usefixtures("one_thread")

NETS = textwrap.dedent(
    """
    from torch import nn


    class Stored(nn.Module):
        '''The logits are the pooled feature the body's hook stores.'''

        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(1, 10, 3), nn.ReLU())
            self.body.register_forward_hook(self.keep)

        def keep(self, module, args, output):
            self.feat = output

        def forward(self, x):
            self.body(x)
            return self.feat.mean((2, 3))


    class Needs(Stored):
        '''Runs only with its hook (the feature is cleared first), and has an auxiliary
        head the logits do not use.'''

        def __init__(self):
            super().__init__()
            self.aux = nn.Linear(10, 10)

        def forward(self, x):
            self.feat = None
            self.body(x)
            return self.feat.mean((2, 3))
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
    sys.path.insert(0, sys.argv[1])
    from nets import Needs
    from cnnlab.train import distributed

    torch_dist.init_process_group("gloo")
    rank = torch_dist.get_rank()
    data = torch.load(os.path.join(sys.argv[1], "batch.pt"))
    x, y = data["x"][rank::2], data["y"][rank::2]  # this rank's half of the batch
    torch.manual_seed(0)
    model = Needs()
    net = distributed.wrap(model, distributed.Dist(rank, 2), (1, 8, 8))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.5)
    for _ in range(3):
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
    torch.save(model.state_dict(), os.path.join(sys.argv[1], f"rank{rank}.pt"))
    torch_dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the work is done and written: skip torch's C++ teardown at exit (tiny_nets)
    """
)


@pytest.fixture
def nets(tmp_path):
    return written_module(tmp_path, NETS)


def _without_grad(model: nn.Module) -> list[str]:
    model.train()(torch.randn(4, 1, 8, 8)).sum().backward()
    names = [n for n, p in model.named_parameters() if p.grad is None]
    model.zero_grad(set_to_none=True)
    return names


def test_a_model_reading_its_hooks_feature_trains(nets, tmp_path):
    torch.manual_seed(0)
    model = nets.Stored()
    start = model.body[0].weight.detach().clone()
    config = TrainConfig(epochs=1, batch_size=256, flip=False, tta=False, precision="fp32")
    result = train(model, "digits", tmp_path / "run", config)
    assert not torch.equal(result["model"].body[0].weight, start)  # the steps trained it
    assert _without_grad(model) == []


def test_the_walk_of_a_stale_feature_is_the_hooked_forwards(nets):
    torch.manual_seed(0)
    model = nets.Stored()
    with torch.no_grad():
        model(torch.zeros(2, 1, 8, 8))  # leaves a feature with no graph
    assert unreached_parameters(model, (1, 8, 8)) == _without_grad(model) == []


def test_a_model_needing_its_hook_is_walked_with_it(nets):
    torch.manual_seed(0)
    model = nets.Needs()
    found = unreached_parameters(model, (1, 8, 8))
    assert found == _without_grad(model) == ["aux.weight", "aux.bias"]
    assert ddp_options(model, (1, 8, 8)) == {"find_unused_parameters": True}
    note = untrained_note(ModelChoice(model, None, {}, "model Needs"), (1, 8, 8))
    assert len(note) == 1 and "aux gets no gradient" in note[0]


class Extra(nn.Module):
    """A layer only its hook on the head calls."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(144, 10))
        self.extra = nn.Linear(10, 10)
        self.net[2].register_forward_hook(lambda m, args, out: out + self.extra(out))

    def forward(self, x):
        return self.net(x)


def test_a_hook_adding_a_layer_is_walked_with_it():
    """The hook-free graph misses the layer the hook calls: the hooked one reaches it."""
    torch.manual_seed(0)
    model = Extra()
    assert unreached_parameters(model, (1, 8, 8)) == _without_grad(model) == []


def test_a_recorder_module_is_set_aside():
    """An nn.Module subclass with __call__ is the user's hook, not torch's."""

    class Recorder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def __call__(self, module, args, output) -> None:
            self.calls += 1

    torch.manual_seed(0)
    model, recorder = (
        nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(144, 10)),
        Recorder(),
    )
    model[0].register_forward_hook(recorder)
    assert unreached_parameters(model, (1, 8, 8)) == []
    assert recorder.calls == 0
    model(torch.zeros(1, 1, 8, 8))
    assert recorder.calls == 1  # put back


def _single(nets, path):
    """Needs' weights after the same 3 steps in one process, on the whole batch."""
    data = torch.load(path / "batch.pt")
    torch.manual_seed(0)
    model = nets.Needs()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.5)
    for _ in range(3):
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(data["x"]), data["y"]).backward()
        optimizer.step()
    return model.state_dict()


def test_ddp_trains_a_model_needing_its_hook(nets, tmp_path):
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(8, 1, 8, 8, generator=generator)
    torch.save(
        {"x": x, "y": torch.randint(0, 10, (8,), generator=generator)}, tmp_path / "batch.pt"
    )
    (tmp_path / "child.py").write_text(CHILD)
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(tmp_path / "child.py"), str(tmp_path),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    first, second = (torch.load(tmp_path / f"rank{rank}.pt") for rank in (0, 1))
    single = _single(nets, tmp_path)
    torch.manual_seed(0)
    start = nets.Needs().state_dict()
    for key in single:
        assert torch.equal(first[key], second[key]), key
        torch.testing.assert_close(first[key], single[key], rtol=1e-5, atol=1e-6)
    # the head no rank uses: no gradient, so not even AdamW's weight decay moved it
    assert torch.equal(first["aux.weight"], start["aux.weight"])
    assert not torch.equal(first["body.0.weight"], start["body.0.weight"])


class _FrozenByHook(nn.Module):
    """A backbone frozen by a forward hook returning its output detached."""

    def __init__(self):
        super().__init__()
        self.backbone, self.head = nn.Conv2d(3, 4, 3), nn.Linear(4, 5)
        self.backbone.register_forward_hook(lambda module, args, out: out.detach())

    def forward(self, x):
        return self.head(self.backbone(x).mean((2, 3)))


def test_ddp_options_see_a_backbone_a_hook_detaches_as_unused():
    model = _FrozenByHook()
    model.train()
    model(torch.zeros(2, 3, 8, 8)).sum().backward()
    truth = [n for n, p in model.named_parameters() if p.grad is None]
    assert truth == ["backbone.weight", "backbone.bias"]
    model.zero_grad(set_to_none=True)
    assert ddp_options(model, (3, 8, 8)) == {"find_unused_parameters": True}
