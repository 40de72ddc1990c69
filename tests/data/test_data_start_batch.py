"""Starting an epoch at batch k (a resume mid-epoch): the batches k.. of the
uninterrupted epoch, in the same order with the same augmentation, without
producing (or, for image folders, decoding) batches 0..k-1."""

from __future__ import annotations

import pytest
import torch
from test_data_folder import write_set
from torchvision.datasets import ImageFolder

from depthlab.data import build_data
from depthlab.data.device_loader import DeviceLoader


def epoch(loader, e: int, start_batch: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader.set_epoch(e, start_batch=start_batch)
    return [(x.clone(), y.clone()) for x, y in loader]


def assert_same(a, b) -> None:
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


@pytest.mark.parametrize("augment", [False, True])
def test_device_loader_starts_at_batch_k(augment):
    x = torch.randint(0, 256, (40, 3, 12, 10), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(0))
    loader = DeviceLoader(x, torch.arange(40), batch_size=8, mean=(0.5,) * 3, std=(0.25,) * 3,
                          train=True, seed=3, crop_padding=2 if augment else 0, flip=augment)
    full = epoch(loader, 4)
    assert len(full) == len(loader) == 5
    for k in (0, 1, 3, 5):
        assert_same(epoch(loader, 4, k), full[k:])
    assert len(loader) == 5  # the epoch's length does not change with its start
    assert_same(epoch(loader, 4), full)  # set_epoch without a start: the whole epoch again
    with pytest.raises(ValueError, match="start_batch 6 is outside 0..5"):
        loader.set_epoch(4, start_batch=6)


def test_device_loader_never_builds_the_skipped_batches(monkeypatch):
    from depthlab.data import device_loader

    x = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8)
    loader = DeviceLoader(x, torch.arange(40), batch_size=8, mean=(0.5,) * 3, std=(0.25,) * 3,
                          train=True, crop_padding=2, flip=True)
    built = []
    real = device_loader.crop_flip
    monkeypatch.setattr(device_loader, "crop_flip",
                        lambda images, index, *a: built.append(index.tolist()) or real(images, index, *a))
    epoch(loader, 1)
    whole = list(built)
    built.clear()
    assert len(epoch(loader, 1, 3)) == 2
    assert built == whole[3:]  # one crop per batch, and only for batches 3 and 4


def test_synthetic_training_set_starts_at_batch_k():
    data = build_data({"name": "synthetic", "train_size": 96, "test_size": 32, "augment": True},
                      batch_size=16, eval_batch_size=32, device="cpu", seed=5)
    full = epoch(data.train, 2)
    assert_same(epoch(data.train, 2, 4), full[4:])


def test_folder_loader_starts_at_batch_k_and_never_decodes_the_skipped_images(tmp_path, monkeypatch):
    root = write_set(tmp_path, per_class=(6, 1), size=(16, 16))  # 18 training images
    data = build_data({"name": "folder", "root": str(root), "image_size": 16, "workers": 0},
                      batch_size=4, eval_batch_size=4, device="cpu", seed=1)
    decoded: list[str] = []
    read = ImageFolder.__getitem__

    def counting(self, index):
        decoded.append(self.samples[index][0])
        return read(self, index)

    monkeypatch.setattr(ImageFolder, "__getitem__", counting)
    full = epoch(data.train, 3)  # augmented: random crops and flips, seeded per sample
    assert len(full) == len(data.train) == 4  # 18 // 4, the last 2 dropped
    whole_epoch = list(decoded)
    assert len(whole_epoch) == 16
    decoded.clear()
    resumed = epoch(data.train, 3, start_batch=2)
    assert_same(resumed, full[2:])
    assert decoded == whole_epoch[8:]  # batches 0 and 1 were never read
    assert len(data.train) == 4
