"""bf16 autocast against fp32 per model family, with and without the layers that are slow in
bf16 kept in fp32 (src/cnnlab/train/fp32_layers.py).

One training step as the trainer takes it (channels-last, batch 128, 3×32×32, SGD-Nesterov,
bf16 autocast around an fp32 model), for small models of the test zoo
(tests/test_summary_zoo.py) and cnnlab's `fast` preset (1×28×28). In one process, the three
ways alternated step by step so load from other processes falls on all alike; prints the
median img/s of each and the share of the bf16 step spent in `convolution_backward`.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bf16_layers.py --steps 6 ghostnet fast
    ONEDNN_VERBOSE=1 ...  # shows the oneDNN kernel each convolution runs on
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import cnnlab  # noqa: E402
from cnnlab.train.fp32_layers import fp32_layers, keep_fp32  # noqa: E402


def model_and_input(name: str, batch: int):
    """(model in train mode, channels-last; x (B, C, H, W); y (B,)) for a zoo family or `fast`."""
    torch.manual_seed(0)
    if name == "fast":
        model, shape = cnnlab.build("fast"), (1, 28, 28)
    else:
        from test_summary_zoo import make

        model, _ = make(name)
        shape = (3, 32, 32)
    model = model.train().to(memory_format=torch.channels_last)
    x = torch.randn(batch, *shape).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        classes = logits_of(model(x[:2])).shape[1]
    return model, x, torch.randint(0, classes, (batch,))


def logits_of(out) -> torch.Tensor:
    """(B, classes) from a model's output (Hugging Face models return an object)."""
    out = out if torch.is_tensor(out) else getattr(out, "logits", None)
    return out.float().flatten(1)


def stepper(model, x, y, amp: bool):
    """One SGD step of `model` on (x, y); returns the seconds it took."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True)

    def step() -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(logits_of(model(x)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - start

    return step


def conv_backward_share(step) -> float:
    """Share of one step's CPU time in aten::convolution_backward (torch.profiler)."""
    from torch.profiler import profile

    with profile() as prof:
        step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    conv = sum(e.self_cpu_time_total for e in events if e.key == "aten::convolution_backward")
    return conv / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("families", nargs="+")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in args.families:
        model, x, y = model_and_input(name, args.batch)
        kept = copy.deepcopy(model)
        names = fp32_layers(kept)
        keep_fp32(kept, names)
        ways = {
            "fp32": stepper(model, x, y, False),
            "bf16": stepper(copy.deepcopy(model), x, y, True),
            "bf16+fp32 layers": stepper(kept, x, y, True),
        }
        times = {way: [] for way in ways}
        for step in ways.values():
            step()  # warm-up: oneDNN's kernels are made on first use
        for _ in range(args.steps):
            for way, step in ways.items():
                times[way].append(step())
        rates = {way: args.batch / statistics.median(t) for way, t in times.items()}
        shares = {way: conv_backward_share(ways[way]) for way in ("bf16", "bf16+fp32 layers")}
        print(
            f"{name}: {len(names)} layers kept in fp32; img/s (median of {args.steps}) "
            + ", ".join(f"{way} {r:.0f}" for way, r in rates.items())
            + f"; conv backward share of the step: bf16 {shares['bf16']:.0%}, "
            f"with fp32 layers {shares['bf16+fp32 layers']:.0%}",
            flush=True,
        )


if __name__ == "__main__":
    main()
