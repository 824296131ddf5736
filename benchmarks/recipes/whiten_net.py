"""airbench's blocks on 1×28×28 behind a frozen patch-whitening first layer.

`make_net` builds: a 3×3 convolution (padding 1) whose 2·9 filters are the ± eigenvectors of
the 3×3 patch covariance of the run's own training images, each scaled by 1/√(eigenvalue +
eps), frozen (only its bias trains); then three blocks of conv -> max-pool -> BatchNorm -> act
-> conv -> BatchNorm -> act (widths `widths`; the third pool 7 -> 4 with padding), global
average pooling and a linear head. As in airbench94, the ± pair lets a ReLU/GELU after the
whitening keep both signs of every component.

The whitening is computed from training images only: those of the split the trainer uses for
the same `seed` and `val_fraction` (cnnlab.data.train_val_split), normalized with that split's
statistics as the trainer normalizes its input, so validation and test images stay unseen.
Pass them to match the run, e.g.

    cnnlab train --model benchmarks/recipes/whiten_net.py:make_net --model-arg seed=0 \\
        --model-arg val_fraction=0.1 --seed 0 --val-fraction 0.1 --out runs/w
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.data import load_dataset, normalization_stats, train_val_split

ACTS = {"relu": nn.ReLU, "gelu": nn.GELU}


def whitening_weights(seed: int, val_fraction: float, images: int, eps: float) -> torch.Tensor:
    """(18, 1, 3, 3): ± eigenvectors of the training split's 3×3 patch covariance, scaled."""
    train, _ = train_val_split(load_dataset("fashion-mnist", "train"), val_fraction, seed)
    (mean,), (std,) = normalization_stats(train)
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(train), generator=gen)[:images]
    x = (train.images[pick].double() / 255 - mean) / std  # (n, 1, 28, 28)
    patches = x.unfold(2, 3, 1).unfold(3, 3, 1).reshape(-1, 9)  # every 3×3 patch
    covariance = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
    scaled = (eigenvectors / (eigenvalues + eps).sqrt()).T.flip(0).reshape(9, 1, 3, 3)
    return torch.cat((scaled, -scaled)).float()


def block(cin: int, cout: int, act: str, pool: nn.Module) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        pool,
        nn.BatchNorm2d(cout),
        ACTS[act](),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        ACTS[act](),
    ]


def make_net(
    widths: tuple = (32, 128, 128),
    act: str = "relu",
    seed: int = 0,
    val_fraction: float = 0.1,
    images: int = 5000,
    eps: float = 5e-3,
) -> nn.Module:
    whiten = nn.Conv2d(1, 18, 3, padding=1, bias=True)
    whiten.weight.data.copy_(whitening_weights(seed, val_fraction, images, eps))
    whiten.weight.requires_grad_(False)
    nn.init.zeros_(whiten.bias)
    w1, w2, w3 = widths
    return nn.Sequential(
        whiten,
        ACTS[act](),
        *block(18, w1, act, nn.MaxPool2d(2)),  # 14×14
        *block(w1, w2, act, nn.MaxPool2d(2)),  # 7×7
        *block(w2, w3, act, nn.MaxPool2d(3, 2, padding=1)),  # 4×4
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(w3, 10),
    )
