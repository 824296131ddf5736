"""cnnlab.summary vs torchinfo.summary on a ResNet-50-shaped model at 3×224×224 (issue 3, item 8).

Both run in this process on the same model, timed in alternating rounds (median of rounds).
cnnlab traces a meta-device copy (no arithmetic); torchinfo runs a real batch-1 forward.

    .venv/bin/python benchmarks/summary_bench.py [--repeats 7] [--threads N] [--baseline FILE]
        [--alone]

Prints the medians, the ratio, and whether total params and MACs agree. --baseline times
another version of summary.py in the same rounds (e.g. `git show HEAD:src/cnnlab/summary.py
> /tmp/summary_head.py`) and checks that its summary equals this one's. --alone times each
tool's calls in a row instead of alternating them (no other tool's forward in between).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: 1×1 reduce, 3×3 (stride here), 1×1 expand ×4."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        width, out = planes, planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += identity
        return self.relu(out)


class ResNet50(nn.Module):
    """Stages of 3, 4, 6, 3 bottlenecks; 25,557,032 parameters, as torchvision's resnet50."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        inplanes, stages = 64, []
        for planes, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            layers = [Bottleneck(inplanes, planes, stride)]
            inplanes = planes * Bottleneck.expansion
            layers += [Bottleneck(inplanes, planes) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * Bottleneck.expansion, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, 64, 56, 56)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, 2048, 7, 7)
        x = torch.flatten(self.avgpool(x), 1)  # (B, 2048)
        return self.fc(x)


def interleaved_seconds(
    fns: dict, repeats: int, alone: bool = False
) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) seconds of each fn over `repeats` rounds, one call of each per round
    (after a warm-up round), so that load from other processes falls on both alike. CPU time
    is this process's, all threads: on a shared machine it moves less than wall time.
    alone: all of one fn's calls in a row instead (warm caches: no other tool in between)."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    rounds = [[(name, fn)] for name, fn in fns.items()] if alone else [list(fns.items())]
    for calls in rounds:
        for round_ in range(repeats + 1):
            for name, fn in calls:
                wall, cpu = time.perf_counter(), time.process_time()
                fn()
                if round_:
                    times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return times


def load_summary(path: Path):
    """The `summary` function of another copy of cnnlab/summary.py (a baseline to time)."""
    spec = importlib.util.spec_from_file_location("summary_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per tool")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--baseline", type=Path, help="another summary.py to time alongside")
    parser.add_argument("--alone", action="store_true", help="each tool's calls in a row")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import torchinfo

    import cnnlab

    torch.manual_seed(0)
    model, size = ResNet50(), (3, 224, 224)
    ours_s = cnnlab.summary(model, size)
    theirs_s = torchinfo.summary(model, input_size=(1, *size), verbose=0)
    fns = {
        "cnnlab.summary": lambda: cnnlab.summary(model, size),
        "torchinfo.summary": lambda: torchinfo.summary(model, (1, *size), verbose=0),
    }
    if args.baseline:
        baseline = load_summary(args.baseline)
        same = baseline(model, size).to_dict() == ours_s.to_dict()
        fns["baseline"] = lambda: baseline(model, size)
    times = interleaved_seconds(fns, args.repeats, args.alone)
    load = os.getloadavg()[0]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.repeats} rounds")
    print(f"load average (1 min) at the end: {load:.1f} on {os.cpu_count()} cores")
    for name, ts in times.items():
        walls = [w for w, _ in ts]
        med, lo, hi = statistics.median(walls), min(walls), max(walls)
        cpu = statistics.median(c for _, c in ts)
        mean = statistics.mean(c for _, c in ts)  # with the garbage collector's occasional passes
        print(
            f"{name:18s} wall median {med * 1e3:7.1f} ms (min {lo * 1e3:.1f}, max {hi * 1e3:.1f})"
            f", CPU median {cpu * 1e3:7.1f} ms (mean {mean * 1e3:.1f})"
        )
    (ours_w, ours_c), (theirs_w, theirs_c), *base = (
        (statistics.median(w for w, _ in ts), statistics.median(c for _, c in ts))
        for ts in times.values()
    )
    print(f"ratio of wall medians (torchinfo / cnnlab): {theirs_w / ours_w:.1f}x")
    print(f"ratio of CPU medians  (torchinfo / cnnlab): {theirs_c / ours_c:.1f}x")
    if base:
        (base_w, base_c), verdict = base[0], "identical" if same else "DIFFERENT"
        print(f"baseline {args.baseline}: summary {verdict} to this one's")
        print(
            f"speed-up over the baseline: wall {base_w / ours_w:.2f}x, CPU {base_c / ours_c:.2f}x"
        )
    print(
        f"total params: cnnlab {ours_s.total_params:,}, torchinfo {theirs_s.total_params:,}: "
        f"{'agree' if ours_s.total_params == theirs_s.total_params else 'DIFFER'}"
    )
    print(
        f"total MACs:   cnnlab {ours_s.total_macs:,}, torchinfo {theirs_s.total_mult_adds:,}: "
        f"{'agree' if ours_s.total_macs == theirs_s.total_mult_adds else 'DIFFER'}"
    )


if __name__ == "__main__":
    main()
