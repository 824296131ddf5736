"""Grad-CAM and saliency, cnnlab vs Captum, in one run (BENCHMARKS.md, section explain).

A ResNet-18-shaped model (BasicBlock ×[2, 2, 2, 2], widths 64–512, ReLU(inplace=True), 1000
classes, random weights, eval mode, parameters requiring grad as a user's model has them) on a
batch of 32 × 3×224×224. Each method runs `--repeats` times alternately after one warm-up call
each; the median time and the min–median–max of the per-round speed-ups are reported.
cnnlab's default (an inference copy with BatchNorm folded into the convs, channels-last) and
with `channels_last=False` (folded only).
Goal: cnnlab ≥ 1.5× Captum's speed, maps equal within 1e-4.

    .venv/bin/python benchmarks/explain_bench.py [--batch 32] [--size 224] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from captum.attr import LayerAttribution, LayerGradCam, Saliency
from torch import nn

from cnnlab.explain import gradcam, saliency


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class ResNet18(nn.Module):
    def __init__(self, classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages, cin = [], 64
        for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            stages.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def captum_gradcam(model, x, target):
    cam = LayerGradCam(model, model.layer4).attribute(x, target=target, relu_attributions=True)
    cam = F.relu(LayerAttribution.interpolate(cam, x.shape[-2:], interpolate_mode="bilinear"))
    cam = cam[:, 0]
    peak = cam.amax((1, 2), keepdim=True)
    return torch.where(peak > 0, cam / peak.clamp(min=1e-30), cam)


def captum_saliency(model, x, target):
    return Saliency(model).attribute(x, target=target, abs=True).amax(1)


def timed(fn):
    """(wall seconds, CPU seconds of this process, result): CPU time is less disturbed by the
    other users of a shared machine than wall time."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = ResNet18().eval()
    x = torch.randn(args.batch, 3, args.size, args.size)
    with torch.no_grad():
        target = model(x).argmax(1)  # both sides explain the prediction
    runs = {
        "Grad-CAM (layer4)": {
            "captum": lambda: captum_gradcam(model, x, target),
            "cnnlab": lambda: gradcam(model, x, layer="layer4"),
            "cnnlab NCHW": lambda: gradcam(model, x, layer="layer4", channels_last=False),
        },
        "saliency": {
            "captum": lambda: captum_saliency(model, x, target),
            "cnnlab": lambda: saliency(model, x),
            "cnnlab NCHW": lambda: saliency(model, x, channels_last=False),
        },
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}")
    print(f"batch {args.batch}×3×{args.size}×{args.size}, median of {args.repeats} (alternating)")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for name, fns in runs.items():
        times = {k: [] for k in fns}
        maps = {}
        for fn in fns.values():
            fn()  # warm-up
        for _ in range(args.repeats):
            for k, fn in fns.items():
                wall, cpu, maps[k] = timed(fn)
                times[k].append((wall, cpu))
        for k, ts in times.items():
            wall = statistics.median(t[0] for t in ts)
            cpu = statistics.median(t[1] for t in ts)
            diff = (maps[k] - maps["captum"]).abs().max().item()
            base = times["captum"]
            print(
                f"{name:18s} {k:21s} wall {wall:6.2f} s  cpu {cpu:6.2f} s  "
                f"speed-up wall {spread(base, ts, 0)}  cpu {spread(base, ts, 1)}  "
                f"max |diff| {diff:.1e}"
            )
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


def spread(base: list, ts: list, i: int) -> str:
    """min–median–max over rounds of Captum's time / this time, each round's pair run
    back to back: a ratio per round follows the machine's load better than a ratio of medians."""
    ratios = sorted(b[i] / t[i] for b, t in zip(base, ts, strict=True))
    return f"{ratios[0]:4.2f}–{statistics.median(ratios):4.2f}–{ratios[-1]:4.2f}×"


if __name__ == "__main__":
    main()
