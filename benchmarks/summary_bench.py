"""cnnlab.summary vs torchinfo.summary on the architectures of tests/test_summary_zoo.py at their
published sizes (224×224; Inception and Xception 299×299, MobileViT 256×256, TextNet 640×640,
MONAI's U-Nets 256×256), plus a torchvision-layout ResNet-50.

Per family both tools run in this process on the same model in alternated rounds (one call of
each per round, after a warm-up round), so load from other processes falls on both alike.
cnnlab traces a meta-device copy (no arithmetic); torchinfo runs a real batch-1 forward.

    .venv/bin/python benchmarks/summary_bench.py [--rounds 5] [--threads N] [--only NAME ...]
        [--floor] [--stages]

Prints per family: n rounds, torchinfo's and cnnlab's median wall time, the ratio of the
medians, the min-median-max of the per-round ratios, and whether the totals agree (params
with sum(p.numel()), and torchinfo's count where it differs; MACs after torchinfo's
conventions: a Linear on a map counted once, a layer named "Conv" counted as a conv,
parameters not named weight or bias not counted; see tests/test_summary_families.leaf_calls).
Then the minimum ratio.

--floor adds a third call to each round: a plain forward, under no_grad and with no tracer,
of a meta-device copy of the model (`copy.deepcopy(model).to("meta")`, made before the
rounds) on a meta batch of one: what a trace that hands every torch call to torch's meta
kernels costs at least (no copy, no tags, no rows). Printed: its median and torchinfo's time
over it; where that is below 10, no such trace reaches 10x on the family.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


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


def rounds(fns: dict, n: int) -> dict[str, list[float]]:
    """Wall seconds of each fn over n alternated rounds (after a warm-up round)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(n + 1):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            if round_:
                times[name].append(time.perf_counter() - start)
    return times


def meta_forward(model: nn.Module, size: tuple[int, ...]):
    """The --floor call: a forward of a meta copy of `model` with no tracer (None where the
    model cannot run on meta, with torch's words)."""
    try:
        twin = copy.deepcopy(model).to("meta").eval()
        x = torch.empty(1, *size, device="meta")
        with torch.no_grad():
            twin(x)
    except Exception as err:  # noqa: BLE001 - reported, the family is timed without it
        return None, f"{type(err).__name__}: {str(err).splitlines()[0][:60]}"

    def forward() -> None:
        with torch.no_grad():
            twin(x)

    return forward, None


def stages(model: nn.Module, size: tuple[int, ...], n: int) -> str:
    """--stages: median ms of copy + prepare, trace, rows + lints over n summaries."""
    import gc

    from cnnlab.design import summary as S

    found: dict[str, list[float]] = {"copy": [], "trace": [], "rows": []}
    gc.disable()  # as summary() runs
    try:
        for _ in range(n + 1):
            start = time.perf_counter()
            tracer = S.Tracer(size[1:], torch.float32)
            twin = S.copy_module(model, None, tracer.prepare, tracer.originals)
            copied = time.perf_counter()
            trace = S._trace(twin, torch.empty((1, *size), device="meta"), tracer, None)
            traced = time.perf_counter()
            S._summary(trace, size)
            done = time.perf_counter()
            S.clear_caches(), S.clear_judged(), S.dropped_pixels.cache_clear()
            found["copy"].append(copied - start)
            found["trace"].append(traced - copied)
            found["rows"].append(done - traced)
    finally:
        gc.enable()
    ms = {k: statistics.median(v[1:]) * 1e3 for k, v in found.items()}
    return (f"    stages: copy + prepare {ms['copy']:.2f} ms, trace {ms['trace']:.2f} ms, "
            f"rows + lints {ms['rows']:.2f} ms")  # fmt: skip


def families() -> dict:
    from test_summary_zoo import FAMILIES, make

    found = {name: (lambda name=name: make(name, full=True)) for name in FAMILIES}
    found["resnet50-torchvision"] = lambda: (ResNet50().eval(), (3, 224, 224))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per family")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--only", nargs="*", help="family names (default: all)")
    parser.add_argument(
        "--floor", action="store_true", help="also time a plain meta forward (no tracer)"
    )
    parser.add_argument(
        "--stages", action="store_true", help="also time copy, trace and rows apart"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    import torchinfo

    import cnnlab
    from test_summary_families import leaf_calls

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} rounds; "
          f"load average (1 min) at the start: {os.getloadavg()[0]:.1f}")  # fmt: skip
    floor = f"  {'meta fwd':>9s} {'ti/fwd':>6s}" if args.floor else ""
    print(f"{'family':24s} {'n':>2s} {'torchinfo':>10s} {'cnnlab':>9s} {'ratio':>6s}  "
          f"per-round min-median-max  totals{floor}")  # fmt: skip
    worst = []
    for name, make in families().items():
        if args.only and name not in args.only:
            continue
        model, size = make()
        ours, theirs = cnnlab.summary(model, size), torchinfo.summary(model, (1, *size), verbose=0)
        _, extra = leaf_calls(model, size)
        params = sum(p.numel() for p in model.parameters())
        same = ours.total_params == params and ours.total_macs == theirs.total_mult_adds + extra
        totals = "identical" if same else "DIFFER"
        if theirs.total_params != params:  # torchinfo's own count is off (QuickNAT's)
            totals += f" (torchinfo: {theirs.total_params:,} params of {params:,})"
        fns = {
            "torchinfo": lambda m=model, s=size: torchinfo.summary(m, (1, *s), verbose=0),
            "cnnlab": lambda m=model, s=size: cnnlab.summary(m, s),
        }
        forward, why = meta_forward(model, size) if args.floor else (None, None)
        if forward is not None:
            fns["meta forward"] = forward
        times = rounds(fns, args.rounds)
        per_round = [t / c for t, c in zip(times["torchinfo"], times["cnnlab"], strict=True)]
        ti, cn = statistics.median(times["torchinfo"]), statistics.median(times["cnnlab"])
        worst.append((ti / cn, name))
        print(
            f"{name:24s} {len(per_round):2d} {ti * 1e3:8.1f}ms {cn * 1e3:7.1f}ms {ti / cn:5.1f}x  "
            f"{min(per_round):5.1f} {statistics.median(per_round):5.1f} {max(per_round):5.1f}"
            f"        {totals}" + _floor_text(times, ti, args.floor, why),
            flush=True,
        )
        if args.stages:
            print(stages(model, size, 4 * args.rounds), flush=True)
    ratio, name = min(worst)
    print(f"minimum ratio of medians: {ratio:.1f}x ({name}); load average (1 min) at the end: "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip


def _floor_text(times: dict, torchinfo_s: float, asked: bool, why: str | None) -> str:
    """The --floor columns: the meta forward's median and torchinfo's time over it."""
    if not asked:
        return ""
    if why is not None:
        return f"  no meta forward ({why})"
    fwd = statistics.median(times["meta forward"])
    return f"  {fwd * 1e3:7.1f}ms {torchinfo_s / fwd:5.1f}x"


if __name__ == "__main__":
    main()
