"""ImageFolder data sets (data=folder, data=imagenet): shapes, transforms,
seeded augmentation independent of workers, and the folder errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from depthlab.data import DataError, build_data

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406]).reshape(3, 1, 1)
IMAGENET_STD = np.array([0.229, 0.224, 0.225]).reshape(3, 1, 1)


def write_set(root: Path, classes=("ant", "bee", "cat"), per_class=(5, 2), size=(20, 16),
              splits=("train", "test")) -> Path:
    rng = np.random.default_rng(0)
    for split, n in zip(splits, per_class):
        for c in classes:
            folder = root / split / c
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def build(cfg, batch_size=4, eval_batch_size=4, seed=0):
    return build_data({"workers": 0, **cfg}, batch_size=batch_size,
                      eval_batch_size=eval_batch_size, device="cpu", seed=seed)


def test_folder_bundle(tmp_path):
    root = write_set(tmp_path)
    data = build({"name": "folder", "root": str(root), "image_size": 16})
    assert (data.name, data.num_classes, data.classes) == ("folder", 3, ["ant", "bee", "cat"])
    assert (data.image_size, data.in_channels, data.train_size, data.test_size) == (16, 3, 15, 6)
    assert "ImageNet" in data.normalisation
    assert (len(data.train), len(data.test)) == (3, 2)  # 15 // 4 dropped-last; ceil(6 / 4)
    data.train.set_epoch(0)
    x, y = next(iter(data.train))
    assert x.shape == (4, 3, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    ys = torch.cat([y for _, y in data.test])
    assert ys.tolist() == [0, 0, 1, 1, 2, 2]  # fixed order


def test_eval_transform_is_resize_center_crop_normalise(tmp_path):
    root = write_set(tmp_path, per_class=(1, 1), size=(16, 16))
    data = build({"name": "folder", "root": str(root), "image_size": 16}, batch_size=1)
    x = next(iter(data.test))[0][0].numpy()
    raw = np.asarray(Image.open(root / "test" / "ant" / "0.png")).transpose(2, 0, 1) / 255
    np.testing.assert_allclose(x, (raw - IMAGENET_MEAN) / IMAGENET_STD, atol=1e-5)


def test_augmentation_is_seeded_per_epoch(tmp_path):
    root = write_set(tmp_path)
    cfg = {"name": "folder", "root": str(root), "image_size": 16}

    def epoch(data, e):
        data.train.set_epoch(e)
        return [(x.clone(), y.clone()) for x, y in data.train]

    data = build(cfg)
    a, b = epoch(data, 1), epoch(data, 1)
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    c = epoch(data, 2)
    assert not all(torch.equal(xa, xc) for (xa, _), (xc, _) in zip(a, c))
    torch.manual_seed(99)  # the global RNG does not matter
    fresh = epoch(build(cfg), 1)
    assert all(torch.equal(xa, xf) for (xa, _), (xf, _) in zip(a, fresh))


def test_worker_processes_give_the_same_batches(tmp_path):
    root = write_set(tmp_path)
    cfg = {"name": "folder", "root": str(root), "image_size": 16}
    main = build(cfg)
    workers = build({**cfg, "workers": 2})
    assert workers.train.loader.num_workers >= 1
    for data in (main, workers):
        data.train.set_epoch(3)
    for (xa, ya), (xb, yb) in zip(main.train, workers.train):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_imagenet_reads_train_and_val(tmp_path):
    root = write_set(tmp_path, splits=("train", "val"), size=(40, 30))
    data = build({"name": "imagenet", "root": str(root), "image_size": 24, "resize": 28})
    assert (data.name, data.image_size, data.train_size, data.test_size) == ("imagenet", 24, 15, 6)
    x, _ = next(iter(data.test))
    assert x.shape == (4, 3, 24, 24)


def test_large_images_use_random_resized_crop(tmp_path):
    from torchvision.transforms import v2

    root = write_set(tmp_path, per_class=(2, 1), size=(80, 72))
    data = build({"name": "folder", "root": str(root), "image_size": 72})
    kinds = [type(t) for t in data.train.loader.dataset.transform.transforms]
    assert v2.RandomResizedCrop in kinds and v2.RandomCrop not in kinds
    assert next(iter(data.train))[0].shape == (4, 3, 72, 72)


def test_subset_of_a_folder(tmp_path):
    root = write_set(tmp_path)
    data = build({"name": "folder", "root": str(root), "train_subset": 6, "test_subset": 3},
                 batch_size=2, eval_batch_size=3)
    assert (data.train_size, data.test_size) == (6, 3)
    assert sorted(torch.cat([y for _, y in data.train]).tolist()) == [0, 0, 1, 1, 2, 2]
    assert torch.cat([y for _, y in data.test]).tolist() == [0, 1, 2]


def one_line_error(cfg) -> str:
    with pytest.raises(DataError) as err:
        build(cfg)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_missing_root(tmp_path):
    msg = one_line_error({"name": "folder", "root": str(tmp_path / "nowhere")})
    assert "data.root" in msg and "nowhere" in msg and "train/<class>" in msg
    assert "data.root is required" in one_line_error({"name": "folder"})


def test_missing_test_dir(tmp_path):
    root = write_set(tmp_path, splits=("train",))
    msg = one_line_error({"name": "folder", "root": str(root)})
    assert "missing test/" in msg and str(root) in msg


def test_imagenet_needs_val(tmp_path):
    root = write_set(tmp_path)  # train/ and test/, but ImageNet's split is val/
    assert "missing val/" in one_line_error({"name": "imagenet", "root": str(root)})


def test_no_class_folders(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    assert "no class folders in" in one_line_error({"name": "folder", "root": str(tmp_path)})


def test_class_folder_without_images(tmp_path):
    root = write_set(tmp_path)
    (root / "train" / "dog").mkdir()
    (root / "test" / "dog").mkdir()
    (root / "test" / "dog" / "notes.txt").write_text("not an image")
    msg = one_line_error({"name": "folder", "root": str(root)})
    assert "no images in class folder(s) dog" in msg and ".png" in msg


def test_different_classes_in_train_and_test(tmp_path):
    root = write_set(tmp_path)
    write_set(tmp_path / "more", classes=("emu",), splits=("train",))
    (tmp_path / "more" / "train" / "emu").rename(root / "train" / "emu")
    msg = one_line_error({"name": "folder", "root": str(root)})
    assert "differ" in msg and "only in train/: emu" in msg and "only in test/: -" in msg


def test_resize_smaller_than_crop(tmp_path):
    root = write_set(tmp_path)
    msg = one_line_error({"name": "folder", "root": str(root), "image_size": 16, "resize": 8})
    assert "data.resize=8" in msg
