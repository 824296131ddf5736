"""`Loader`: batches drawn by index from one in-memory tensor, augmented a whole batch at a time.

No worker processes and no per-sample transforms: the split is one normalized float tensor
(on `device`), an epoch is a permutation of its indices, and a batch is `images[idx]` followed
by the batch augmentation. What an epoch yields is a pure function of (seed, epoch, rank), so a
run resumed mid-epoch (`start_step`) sees the very batches it would have seen.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from cnnlab.data.imageset import ImageSet
from cnnlab.data.split import to_float
from cnnlab.errors import DataError


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (numpy SeedSequence), so nearby tuples don't collide."""
    words = [int(p) % 2**64 for p in parts]  # SeedSequence takes non-negative integers only
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0]) >> 1


def _wants_generator(augment: Callable) -> bool:
    try:
        params = inspect.signature(augment).parameters.values()
    except (TypeError, ValueError):
        return True
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in positional)


class Loader:
    """Iterate `(x, y)` batches: x float `(B, C, H, W)` (channels_last), y int64 `(B,)`.

    images: the whole split, float `(N, C, H, W)` already normalized (`to_float`).
    shuffle: a fresh permutation each epoch from a generator seeded with (seed, epoch); the same
        on every rank, which then takes its shard `perm[rank::world_size]`.
    augment: called per batch as `augment(x, gen)` with a generator seeded by
        (seed, epoch, rank, step) (or `augment(x)` if it takes one argument); e.g. `Augment()`.
    drop_last: drop the final short batch (and the remainder that does not divide among
        ranks); otherwise the index list is padded by wrapping around so that every rank has
        the same number of batches (as `DistributedSampler` does).
    start_step: skip the first batches of the next epoch (resume mid-epoch); reset by
        `set_epoch`.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool = True,
        augment: Callable | None = None,
        seed: int = 0,
        drop_last: bool = False,
        channels_last: bool = True,
        device: torch.device | str = "cpu",
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
    ) -> None:
        if images.dim() != 4 or not images.is_floating_point():
            raise DataError(
                f"Loader needs float images (N, C, H, W) (see to_float), got "
                f"{images.dtype} {tuple(images.shape)}"
            )
        if len(labels) != len(images):
            raise DataError(f"Loader: {len(images)} images but {len(labels)} labels")
        if labels.is_floating_point() or labels.dtype == torch.bool:  # .to(int64) truncated
            raise DataError(
                f"Loader: labels must be integer class indices, got {labels.dtype}; "
                "use labels.long() for whole numbers"
            )
        if batch_size < 1:
            raise DataError(f"batch_size must be ≥ 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise DataError(f"rank {rank} is not in 0..{world_size - 1} (world_size)")
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device, torch.int64)
        self.batch_size = batch_size
        self.shuffle, self.augment, self.seed = shuffle, augment, seed
        self.drop_last, self.channels_last = drop_last, channels_last
        self.rank, self.world_size = rank, world_size
        self._augment_gets_gen = augment is not None and _wants_generator(augment)
        self.epoch, self.start_step = 0, start_step
        if self.samples_per_rank() == 0:
            raise DataError(
                f"Loader: {len(images)} images give rank {rank} of {world_size} no sample "
                f"(drop_last={drop_last}); use fewer ranks or more data"
            )

    @classmethod
    def from_imageset(
        cls,
        ds: ImageSet,
        mean: Sequence[float],
        std: Sequence[float],
        batch_size: int,
        **options,
    ) -> Loader:
        """A Loader over `ds` normalized with (mean, std) (`to_float`); options as `Loader`."""
        return cls(to_float(ds.images, mean, std), ds.labels, batch_size, **options)

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Select the epoch whose order and augmentation the next iteration yields."""
        self.epoch, self.start_step = int(epoch), int(start_step)

    def samples_per_rank(self) -> int:
        n = len(self.images)
        return n // self.world_size if self.drop_last else math.ceil(n / self.world_size)

    def __len__(self) -> int:
        """Batches per epoch on this rank (the whole epoch, regardless of `start_step`)."""
        per_rank = self.samples_per_rank()
        if self.drop_last:
            return per_rank // self.batch_size
        return math.ceil(per_rank / self.batch_size)

    def indices(self, epoch: int | None = None) -> torch.Tensor:
        """This rank's sample indices for `epoch`, in the order they are served: `(M,)` int64."""
        epoch = self.epoch if epoch is None else epoch
        n = len(self.images)
        if self.shuffle:
            gen = torch.Generator().manual_seed(derive_seed(self.seed, epoch))
            order = torch.randperm(n, generator=gen)
        else:
            order = torch.arange(n)
        total = self.samples_per_rank() * self.world_size
        if total > n:  # wrap around so that every rank gets the same count
            order = torch.cat([order, order[: total - n]])
        order = order[:total]
        mine = order[self.rank :: self.world_size]
        if self.drop_last:
            mine = mine[: len(self) * self.batch_size]
        return mine

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        index = self.indices().to(self.device)
        for step in range(self.start_step, len(self)):
            idx = index[step * self.batch_size : (step + 1) * self.batch_size]
            x, y = self.images[idx], self.labels[idx]  # (B, C, H, W), (B,)
            if self.augment is not None:
                if self._augment_gets_gen:
                    seed = derive_seed(self.seed, self.epoch, self.rank, step)
                    x = self.augment(x, torch.Generator().manual_seed(seed))
                else:
                    x = self.augment(x)
            if self.channels_last:  # NHWC: faster convolutions on CPU (oneDNN) and GPU
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y

    def __repr__(self) -> str:
        n, c, h, w = self.images.shape
        return (
            f"Loader({n} images {c}×{h}×{w}, batch_size={self.batch_size}, batches={len(self)}, "
            f"shuffle={self.shuffle}, augment={self.augment!r}, rank={self.rank}/{self.world_size})"
        )
