"""Batches served from a data set that lives whole on the training device, the
way airbench / hlb-CIFAR10 feed CIFAR-10: no worker processes, no per-sample
Python. Images stay uint8 NCHW on the device (4x less memory and bandwidth than
float: 150 MB for CIFAR-10's training set); each batch is gathered, cropped and
flipped with a few whole-batch indexing ops, then converted to float and
normalised.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch
import torch.nn.functional as F

from .base import Shard, epoch_generator


def crop_flip(images: torch.Tensor, index: torch.Tensor, padding: int, dy: torch.Tensor,
              dx: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """images[index] (N, C, H, W) uint8, each shifted by (dy, dx) in [-padding, padding]
    pixels and mirrored where `flip` is true.

    Per sample this is: zero-pad by `padding`, take the H x W crop at (padding + dy,
    padding + dx), flip horizontally - torchvision's RandomCrop(padding=p, fill=0) +
    RandomHorizontalFlip, so padded pixels are black before normalisation.
    """
    batch = images.index_select(0, index)  # index_select copies whole images; x[idx] is ~20x slower on CPU
    b, c, h, w = batch.shape
    p = padding
    padded = F.pad(batch, (p, p, p, p))  # (B, C, H+2p, W+2p), pad the batch once
    hp, wp = h + 2 * p, w + 2 * p
    # Rows: one index_select of whole padded rows (contiguous copies).
    first_row = (torch.arange(b * c, device=images.device).view(b, c, 1) * hp
                 + (p + dy).view(b, 1, 1))
    rows = (first_row + torch.arange(h, device=images.device)).view(-1)
    out = padded.view(-1, wp).index_select(0, rows).view(b, c, h, wp)
    # Columns: one gather with per-sample offsets; the flip is folded into the column index.
    cols = torch.arange(w, device=images.device).expand(b, w)
    cols = torch.where(flip[:, None], w - 1 - cols, cols) + (p + dx)[:, None]
    return out.gather(3, cols.view(b, 1, 1, w).expand(b, c, h, w))


class DeviceLoader:
    """Iterable of (x, y) batches from `images` (N, C, H, W) uint8 and `labels` (N,)
    int64, both already on the device; x is float32 NCHW, (x/255 - mean) / std.

    train=True: a fresh permutation per epoch, the last incomplete batch dropped
    (BatchNorm), and, when crop_padding > 0 or flip, random crops and flips. All
    of it is a pure function of (seed, epoch), drawn on the CPU so that every
    device sees the same batches. Call set_epoch(e) before iterating epoch e;
    set_epoch(e, start_batch=k) iterates its batches k.. only (a resume mid-epoch).
    train=False: fixed order, every sample once, no augmentation.

    shard (one run on several processes): batch_size is the global batch; batch i
    of rank r is the r-th 1/world slice of the one-process batch i (disjoint slices
    of the same epoch permutation). For evaluation, rank r serves samples r::world.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int,
                 mean: Sequence[float], std: Sequence[float], train: bool, seed: int = 0,
                 crop_padding: int = 0, flip: bool = False, shard: Shard = Shard()) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise TypeError(f"images must be (N, C, H, W) uint8, got {tuple(images.shape)} {images.dtype}")
        if not train and shard.world > 1:
            part = torch.arange(shard.rank, len(labels), shard.world, device=labels.device)
            images, labels = images.index_select(0, part), labels.index_select(0, part)
        self.images, self.labels = images, labels
        self.batch_size, self.train, self.seed = batch_size, train, seed
        self.shard = shard
        # this rank's part of each training batch: [offset, offset + local_batch)
        self.local_batch = shard.batch(batch_size) if train else batch_size
        self.offset = shard.rank * self.local_batch if train else 0
        self.crop_padding = crop_padding if train else 0
        self.flip = flip and train
        device = images.device
        # Normalising in 0..255 units saves a division per pixel.
        self.mean = torch.tensor([255.0 * m for m in mean], device=device).view(1, -1, 1, 1)
        self.inv_std = torch.tensor([1 / (255.0 * s) for s in std], device=device).view(1, -1, 1, 1)
        self.epoch = 0
        self.start_batch = 0

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.train else -(-n // self.batch_size)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        if not 0 <= start_batch <= len(self):
            raise ValueError(f"start_batch {start_batch} is outside 0..{len(self)}")
        self.epoch, self.start_batch = epoch, start_batch

    @property
    def augments(self) -> bool:
        return self.crop_padding > 0 or self.flip

    def _epoch_draws(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None,
                                    torch.Tensor | None]:
        """Order, vertical and horizontal shifts and flips for every sample of the epoch."""
        n, device = len(self.labels), self.images.device
        if not self.train:
            return torch.arange(n, device=device), None, None, None
        g = epoch_generator(self.seed, self.epoch)
        order = torch.randperm(n, generator=g)
        if not self.augments:
            return order.to(device), None, None, None
        p = self.crop_padding
        dy = torch.randint(-p, p + 1, (n,), generator=g)
        dx = torch.randint(-p, p + 1, (n,), generator=g)
        flip = torch.rand(n, generator=g) < (0.5 if self.flip else 0.0)
        return order.to(device), dy.to(device), dx.to(device), flip.to(device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order, dy, dx, flip = self._epoch_draws()
        b, first, size = self.batch_size, self.offset, self.local_batch
        for i in range(self.start_batch, len(self)):  # the epoch's draws are whole: skip by index
            part = slice(i * b + first, i * b + first + size)
            idx = order[part]
            if dy is None:
                batch = self.images.index_select(0, idx)
            else:
                batch = crop_flip(self.images, idx, self.crop_padding, dy[part], dx[part], flip[part])
            x = batch.float().sub_(self.mean).mul_(self.inv_std)
            yield x, self.labels.index_select(0, idx)
