"""Synthetic images: fixed data whatever the run seed, and a signal worth learning."""

from __future__ import annotations

import math

import pytest
import torch

from depthlab.data import DataError, build_data


def build(seed=0, **cfg):
    return build_data({"name": "synthetic", **cfg}, batch_size=32, eval_batch_size=64,
                      device="cpu", seed=seed)


def whole(loader) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*loader)
    return torch.cat(xs), torch.cat(ys)


def test_defaults():
    data = build()
    assert (data.name, data.num_classes, data.image_size, data.in_channels) == ("synthetic", 10, 32, 3)
    assert (data.train_size, data.test_size, len(data.train), len(data.test)) == (512, 256, 16, 4)
    x, y = whole(data.test)
    assert x.shape == (256, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert abs(x.mean()) < 0.1 and 0.8 < x.std() < 1.2  # normalised by its own scale


def test_images_do_not_depend_on_the_run_seed():
    a, b = whole(build(seed=0).test), whole(build(seed=1).test)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_train_and_test_share_the_class_patterns_but_not_the_noise():
    data = build()
    train_x, train_y = whole(data.train)
    test_x, test_y = whole(data.test)
    assert not any(torch.equal(test_x[0], t) for t in train_x)
    # nearest class mean, learned on train, classifies test: there is a signal to learn
    means = torch.stack([train_x[train_y == c].mean(0) for c in range(10)])
    pred = torch.cdist(test_x.flatten(1), means.flatten(1)).argmin(1)
    assert (pred == test_y).float().mean() > 0.95


def test_no_signal_is_pure_noise():
    data = build(signal=0.0)
    train_x, train_y = whole(data.train)
    test_x, test_y = whole(data.test)
    means = torch.stack([train_x[train_y == c].mean(0) for c in range(10)])
    assert means.std(0).mean() < 0.2  # only sampling noise: 1 / sqrt(51 images) = 0.14
    pred = torch.cdist(test_x.flatten(1), means.flatten(1)).argmin(1)
    assert (pred == test_y).float().mean() < 0.3


def test_class_means_differ_with_signal():
    x, y = whole(build().train)
    means = torch.stack([x[y == c].mean(0) for c in range(10)]).flatten(1)
    gaps = torch.pdist(means)
    assert gaps.min() > 10  # per-pixel noise of a class mean is about 1 / sqrt(51) per value


def test_sizes_and_augmentation():
    data = build(num_classes=3, image_size=8, train_size=64, test_size=9, augment=True,
                 crop_padding=1)
    x, y = next(iter(data.train))
    assert x.shape == (32, 3, 8, 8) and set(y.tolist()) <= {0, 1, 2}
    assert data.classes == ["class0", "class1", "class2"]


def shifted_and_flipped(images: torch.Tensor, padding: int, fill: float):
    """Every crop-and-flip of every image, computed here from scratch: zero-pad by
    `padding` (black, `fill` once normalised), cut the S x S window shifted by (dy, dx),
    mirror left-right or not. Returns the candidates (K, C, S, S) and their
    (source index, dy, dx, flipped) labels."""
    n, _, size, _ = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4, value=fill)
    crops, keys = [], []
    for dy in range(-padding, padding + 1):
        for dx in range(-padding, padding + 1):
            window = padded[:, :, padding + dy:padding + dy + size, padding + dx:padding + dx + size]
            for flipped in (False, True):
                crops.append(window.flip(-1) if flipped else window)
                keys += [(i, dy, dx, flipped) for i in range(n)]
    return torch.cat(crops), keys


def test_augmentation_shifts_and_mirrors_the_training_images():
    size, pad, signal = 12, 3, 1.0
    common = dict(num_classes=4, image_size=size, train_size=64, test_size=32, signal=signal)
    plain = build(**common)
    aug = build(**common, augment=True, crop_padding=pad, flip=True)
    plain.train.set_epoch(1)
    originals, labels = whole(plain.train)  # all 64 training images, un-augmented (shuffled)
    # black in normalised units: (0 - 0.5) / std, std = 32 * sqrt(1 + signal^2) / 255
    black = -0.5 / (32 * math.sqrt(1 + signal**2) / 255)
    candidates, keys = shifted_and_flipped(originals, pad, black)
    seen = {}
    for epoch in (1, 2):
        aug.train.set_epoch(epoch)
        x, y = whole(aug.train)
        assert x.shape == (64, 3, size, size)
        best = torch.cdist(x.flatten(1), candidates.flatten(1)).argmin(1)
        # each augmented image is one of the candidates, to float precision
        assert (x - candidates[best]).abs().max() < 1e-4
        found = [keys[k] for k in best.tolist()]
        # each sample is its source's label, every source once per epoch
        assert [labels[i].item() for i, *_ in found] == y.tolist()
        assert sorted(i for i, *_ in found) == list(range(64))
        seen[epoch] = {i: (dy, dx, f) for i, dy, dx, f in found}
    draws = list(seen[1].values())
    shifted = [d for d in draws if d[:2] != (0, 0)]
    flipped = [d for d in draws if d[2]]
    assert len(shifted) > 32  # 48 of 49 offsets are non-zero
    assert {d[0] > 0 for d in shifted} == {True, False} and {d[1] > 0 for d in shifted} == {True, False}
    assert 16 <= len(flipped) <= 48  # about half mirrored
    assert all(abs(dy) <= pad and abs(dx) <= pad for dy, dx, _ in draws)
    assert seen[1] != seen[2]  # fresh draws every epoch
    # the same epoch again: the same draws (a resumed run sees the same batches)
    aug.train.set_epoch(1)
    again, _ = whole(aug.train)
    aug.train.set_epoch(1)
    assert torch.equal(again, whole(aug.train)[0])
    # evaluation is never augmented
    assert torch.equal(whole(aug.test)[0], whole(plain.test)[0])


@pytest.mark.parametrize("cfg,match", [
    ({"train_size": 0}, "data.train_size must be a positive integer"),
    ({"signal": -1}, "data.signal must be >= 0"),
    ({"image_size": 8, "crop_padding": 8}, "data.crop_padding must be 0..7"),
    ({"train_size": 16}, "fewer than one batch of 32"),
])
def test_errors(cfg, match):
    with pytest.raises(DataError, match=match):
        build(**cfg)
