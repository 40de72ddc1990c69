"""Random images with a learnable signal, for smoke runs and benchmarks: no
files, no downloads, the same images on every machine.

Each class has a fixed smooth colour pattern (a random 4x4 grid per channel,
upsampled); an image is its class's pattern times `signal` plus Gaussian noise,
so a network can learn it and its training error falls (signal 0 = pure noise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from .base import DataBundle, DataError, Shard, check_fits_one_batch, derive_seed, parse_options
from .device_loader import DeviceLoader

# Fixed: the images must not change with the run seed (only order and augmentation do).
DATA_SEED = 20151210
GREY, SCALE = 127.5, 32.0  # pixel value = GREY + SCALE * (noise + signal * pattern), 0..255
GRID = 4  # pattern resolution before upsampling: coarse blobs survive crops, flips and pooling


@dataclass(frozen=True)
class SyntheticOptions:  # conf/data/synthetic.yaml says what each means
    num_classes: int = 10
    image_size: int = 32
    train_size: int = 512
    test_size: int = 256
    signal: float = 1.0
    augment: bool = False
    crop_padding: int = 4
    flip: bool = True


def class_patterns(num_classes: int, image_size: int) -> torch.Tensor:
    """(num_classes, 3, S, S) float patterns, each with unit RMS."""
    g = torch.Generator().manual_seed(derive_seed(DATA_SEED, 0))
    grid = torch.randn(num_classes, 3, GRID, GRID, generator=g)
    patterns = F.interpolate(grid, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return patterns / patterns.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt()


def make_split(n: int, patterns: torch.Tensor, signal: float, stream: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n images (N, 3, S, S) uint8 with class-balanced labels (N,) int64."""
    g = torch.Generator().manual_seed(derive_seed(DATA_SEED, stream))
    labels = torch.arange(n) % len(patterns)
    noise = torch.randn(n, *patterns.shape[1:], generator=g)
    images = GREY + SCALE * (noise + signal * patterns[labels])
    return images.round_().clamp_(0, 255).to(torch.uint8), labels


def build(cfg: Mapping[str, Any], *, batch_size: int, eval_batch_size: int,
          device: torch.device, seed: int, shard: Shard = Shard()) -> DataBundle:
    o = parse_options(SyntheticOptions, cfg, "synthetic")
    for key in ("num_classes", "image_size", "train_size", "test_size"):
        if getattr(o, key) < 1:
            raise DataError(f"data.{key} must be a positive integer, got {getattr(o, key)}")
    if o.signal < 0:
        raise DataError(f"data.signal must be >= 0 (0 = pure noise), got {o.signal}")
    if not 0 <= o.crop_padding < o.image_size:
        raise DataError(f"data.crop_padding must be 0..{o.image_size - 1} pixels, got {o.crop_padding}")
    check_fits_one_batch(o.train_size, batch_size)

    # Made on the CPU, then moved: the same images on every device.
    patterns = class_patterns(o.num_classes, o.image_size)
    train_x, train_y = make_split(o.train_size, patterns, o.signal, stream=1)
    test_x, test_y = make_split(o.test_size, patterns, o.signal, stream=2)
    # Normalise by the generator's own scale: about zero mean and unit variance.
    std = SCALE * math.sqrt(1 + o.signal**2) / 255
    common = dict(mean=(GREY / 255,) * 3, std=(std,) * 3, seed=seed, shard=shard)
    train = DeviceLoader(train_x.to(device), train_y.to(device), batch_size=batch_size, train=True,
                         crop_padding=o.crop_padding if o.augment else 0,
                         flip=o.flip and o.augment, **common)
    test = DeviceLoader(test_x.to(device), test_y.to(device), batch_size=eval_batch_size,
                        train=False, **common)
    return DataBundle(
        name="synthetic", train=train, test=test, num_classes=o.num_classes,
        image_size=o.image_size, in_channels=3, train_size=o.train_size, test_size=o.test_size,
        classes=[f"class{i}" for i in range(o.num_classes)],
        normalisation=f"mean 0.5, std {std:.4f} per channel: the generator's own scale",
    )
