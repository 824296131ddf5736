"""Linear probes on every layer from one forward pass per batch vs one pass per layer
(BENCHMARKS.md, section explain). Goal: ≥ (number of layers ÷ 1.5)× faster extraction.

A 6-conv Fashion-MNIST CNN (conv-BN-ReLU ×6, widths 32/64/128, two max-pools, GAP, linear),
random weights (speed does not depend on them), N Fashion-MNIST training images + 1000 test
images. Timed: feature extraction of all probe layers (the part the design changes), and the
whole probe (extraction + one L-BFGS logistic regression per layer, the same in both).

    .venv/bin/python benchmarks/probe_bench.py [--train 10000] [--epochs 30] [--extraction-only]
"""

from __future__ import annotations

import argparse
import gzip
import platform
import time

import numpy as np
import torch
from torch import nn

from cnnlab.explain import linear_probe
from cnnlab.explain.probe import INPUT, default_probe_layers, extract_features, fit_logistic

FMNIST = "/usr/share/datasets/fashion-mnist/"


def read(name: str, offset: int, n: int, size: int) -> torch.Tensor:
    with gzip.open(FMNIST + name) as f:
        a = np.frombuffer(f.read(), np.uint8, offset=offset)[: n * size]
    return torch.from_numpy(a.copy())


def model() -> nn.Module:
    layers, cin = [], 1
    for i, cout in enumerate([32, 32, 64, 64, 128, 128]):
        layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        if i in (1, 3):
            layers.append(nn.MaxPool2d(2))
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10)]
    return nn.Sequential(*layers).eval()


def probe_each_layer_alone(net, train, test, names, epochs) -> dict[str, float]:
    """The baseline: what linear_probe does, with one forward pass per layer."""
    acc = {}
    for name in names:
        (ftr,), ytr = extract_features(net, train, [name])[0].values(), train[1]
        (fte,), yte = extract_features(net, test, [name])[0].values(), test[1]
        mean, std = ftr.mean(0), ftr.std(0).clamp(min=1e-6)
        head = fit_logistic((ftr - mean) / std, ytr, 10, epochs=epochs)
        with torch.no_grad():
            acc[name] = (head((fte - mean) / std).argmax(1) == yte).float().mean().item()
    return acc


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument(
        "--extraction-only",
        action="store_true",
        help="time the extraction only (the whole probe per layer takes minutes)",
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    net = model()
    xtr = read("train-images-idx3-ubyte.gz", 16, args.train, 784).view(-1, 1, 28, 28)
    ytr = read("train-labels-idx1-ubyte.gz", 8, args.train, 1).long()
    xte = read("t10k-images-idx3-ubyte.gz", 16, 1000, 784).view(-1, 1, 28, 28)
    yte = read("t10k-labels-idx1-ubyte.gz", 8, 1000, 1).long()
    train, test = (xtr, ytr), (xte, yte)
    layers = default_probe_layers(net, xtr[:1].float() / 255)
    names = [INPUT, *layers]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}")
    print(f"{len(layers)} layers + input, {args.train} train + 1000 test images")

    one = timed(lambda: extract_features(net, train, names))
    each = timed(lambda: [extract_features(net, train, [n]) for n in names])
    for a, b in zip(one[2][0].values(), [r[0] for r in each[2]], strict=True):
        assert torch.equal(a, next(iter(b.values())))
    print(
        f"extraction  one pass {one[0]:6.2f} s (cpu {one[1]:.2f})   one pass per layer "
        f"{each[0]:6.2f} s (cpu {each[1]:.2f})   speed-up wall {each[0] / one[0]:.1f}×  "
        f"cpu {each[1] / one[1]:.1f}×   goal {len(layers) / 1.5:.1f}×"
    )
    if args.extraction_only:
        return
    full = timed(lambda: linear_probe(net, train, test, epochs=args.epochs))
    per = timed(lambda: probe_each_layer_alone(net, train, test, names, args.epochs))
    worst = max(abs(full[2][n] - per[2][n]) for n in names)
    print(
        f"whole probe one pass {full[0]:6.2f} s (cpu {full[1]:.2f})   per layer "
        f"{per[0]:6.2f} s (cpu {per[1]:.2f})   speed-up wall {per[0] / full[0]:.1f}×  "
        f"cpu {per[1] / full[1]:.1f}×   max accuracy difference {worst:.4f}"
    )


if __name__ == "__main__":
    main()
