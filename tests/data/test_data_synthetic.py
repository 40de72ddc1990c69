"""Synthetic images: fixed data whatever the run seed, and a signal worth learning."""

from __future__ import annotations

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


@pytest.mark.parametrize("cfg,match", [
    ({"train_size": 0}, "data.train_size must be a positive integer"),
    ({"signal": -1}, "data.signal must be >= 0"),
    ({"image_size": 8, "crop_padding": 8}, "data.crop_padding must be 0..7"),
    ({"train_size": 16}, "fewer than one batch of 32"),
])
def test_errors(cfg, match):
    with pytest.raises(DataError, match=match):
        build(**cfg)
