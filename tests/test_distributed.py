"""DDP under torchrun: two CPU ranks (gloo) end with identical weights; rank 0 writes the run."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import torch

from cnnlab.train import checkpoint, distributed

CHILD = textwrap.dedent(
    """
    import hashlib, os, sys
    import torch
    torch.set_num_threads(1)
    from cnnlab.train import TrainConfig, train

    spec = {"name": "tiny", "input": [1, 8, 8], "layers": [
        {"conv": {"filters": 8, "kernel": 3, "padding": "same"}}, "batchnorm", "relu",
        {"conv": {"filters": 16, "kernel": 3, "padding": "same"}}, "batchnorm", "relu",
        "gap", {"linear": 10}]}
    config = TrainConfig(epochs=2, batch_size=64, flip=False, precision="fp32")
    result = train(spec, "digits", sys.argv[1], config)
    state = result["model"].state_dict()
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode() + state[name].contiguous().numpy().tobytes())
    rank = os.environ["RANK"]
    with open(os.path.join(sys.argv[2], f"rank{rank}.sha256"), "w") as f:
        f.write(digest.hexdigest())
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the work is done and written: skip torch's C++ teardown at exit (tiny_nets)
    """
)


def _digest(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode() + state[name].contiguous().numpy().tobytes())
    return digest.hexdigest()


def test_single_process_helpers_are_no_ops():
    dist = distributed.setup("cpu")
    assert not dist.enabled and dist.is_main
    assert distributed.all_reduce_sum([1.0, 2.5], dist) == [1.0, 2.5]
    assert distributed.all_reduce_min(7, dist) == 7
    assert distributed.any_rank(True, dist) is True
    model = torch.nn.Linear(2, 2)
    assert distributed.wrap(model, dist) is model


def test_torchrun_two_ranks_identical_weights_and_complete_run(tmp_path):
    """Truth: each rank's own weights (a hash each rank writes) and the file rank 0 wrote."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(script), str(out), str(tmp_path),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    hashes = [(tmp_path / f"rank{r}.sha256").read_text() for r in (0, 1)]
    assert hashes[0] == hashes[1]
    assert _digest(checkpoint.load_weights(out / "model.safetensors")) == hashes[0]
    for name in ("spec.yaml", "config.json", "metrics.jsonl", "checkpoint.json"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["world_size"] == 2
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert "test_acc" in rows[-1]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("rank")) == [
        "rank0.sha256",
        "rank1.sha256",
    ]


def test_torchrun_refused_output_directory_stops_every_rank(tmp_path):
    """Rank 0 alone checks --out; rank 1 must learn its refusal instead of waiting forever."""
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("a user's file")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "cnnlab.cli", "train", "--preset", "lenet5", "--data", "digits", "--epochs", "1",
        "--out", str(out), "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    # both ranks' own lines (torchrun's summary repeats the message without the prefix; the
    # ranks share stderr, so their two lines can run together)
    own = f"cnnlab train: error: --out {out} is not empty and is not a cnnlab run"
    assert done.stderr.count(own) == 2, done.stderr
    assert (out / "notes.txt").read_text() == "a user's file"
