"""CIFAR-10: both layouts, exact decoding and normalisation, the cache, and
every way of not finding the data."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torchvision

from depthlab.data import DataError, build_data, cifar10, decode
from depthlab.data import cache as cache_mod
from depthlab.data.base import parse_options

MEAN = np.array([0.4914, 0.4822, 0.4465])
STD = np.array([0.2470, 0.2435, 0.2616])


def build(cfg, batch_size=8, eval_batch_size=7, seed=0):
    return build_data(cfg, batch_size=batch_size, eval_batch_size=eval_batch_size, device="cpu",
                      seed=seed)


def reference(images_nhwc: np.ndarray) -> np.ndarray:
    """Independent normalisation: float64, (x/255 - mean) / std, NCHW."""
    x = images_nhwc.astype(np.float64) / 255
    return ((x - MEAN) / STD).transpose(0, 3, 1, 2)


def test_pickled_bundle_shapes_and_contents(tmp_path, tiny_cifar, cifar_cfg):
    tiny_cifar.write_pickled(tmp_path / "data" / "cifar-10-batches-py")
    data = build(cifar_cfg(tmp_path / "data"))
    assert (data.name, data.num_classes, data.image_size, data.in_channels) == ("cifar10", 10, 32, 3)
    assert (data.train_size, data.test_size) == (60, 30)
    assert data.classes == tiny_cifar.classes
    assert "CIFAR-10 training set" in data.normalisation
    assert len(data.train) == 60 // 8  # last incomplete batch dropped
    assert len(data.test) == 5  # ceil(30 / 7): every test image kept
    data.train.set_epoch(0)
    x, y = next(iter(data.train))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and x.is_contiguous()
    assert y.shape == (8,) and y.dtype == torch.int64
    assert x.device.type == y.device.type == "cpu"
    seen = torch.cat([y for _, y in data.train])
    assert len(seen) == 56 and set(seen.tolist()) <= set(range(10))


def test_test_loader_is_exact_fixed_order_and_normalised(tmp_path, tiny_cifar, cifar_cfg):
    tiny_cifar.write_pickled(tmp_path / "cifar-10-batches-py")
    data = build(cifar_cfg(tmp_path))
    for epoch in (0, 3):  # no shuffle, no augmentation, whatever the epoch
        data.test.set_epoch(epoch)
        x = torch.cat([x for x, _ in data.test]).numpy()
        y = torch.cat([y for _, y in data.test]).numpy()
        np.testing.assert_array_equal(y, tiny_cifar.test_y)
        np.testing.assert_allclose(x, reference(tiny_cifar.test_x), rtol=0, atol=1e-5)


def test_training_batch_without_augmentation_is_a_permutation(tmp_path, tiny_cifar, cifar_cfg):
    tiny_cifar.write_pickled(tmp_path / "cifar-10-batches-py")
    data = build(cifar_cfg(tmp_path, augment=False), batch_size=60)
    (x, y), = list(data.train)
    ref = reference(tiny_cifar.train_x).reshape(60, -1)
    # each sample of the batch is exactly one training image, each image once
    dist = np.abs(x.numpy().reshape(60, 1, -1) - ref[None]).max(-1)
    source = dist.argmin(1)
    assert (dist.min(1) < 1e-5).all() and sorted(source) == list(range(60))
    np.testing.assert_array_equal(y.numpy(), tiny_cifar.train_y[source])
    assert list(source) != list(range(60))  # shuffled


def test_root_may_be_the_batch_folder_itself(tmp_path, tiny_cifar, cifar_cfg):
    folder = tiny_cifar.write_pickled(tmp_path / "renamed-batches")
    assert build(cifar_cfg(folder)).train_size == 60


@pytest.mark.parametrize("where", ["root", "cifar10-jpeg"])
def test_image_folders_decode_to_the_same_pixels(tmp_path, tiny_cifar, cifar_cfg, where):
    root = tmp_path / "data"
    tiny_cifar.write_folders(root if where == "root" else root / "cifar10-jpeg", ext="png")
    data = build(cifar_cfg(root))
    assert data.classes == tiny_cifar.classes  # sorted folder names
    xs, ys = tiny_cifar.in_folder_order("test")
    x = torch.cat([x for x, _ in data.test]).numpy()
    y = torch.cat([y for _, y in data.test]).numpy()
    np.testing.assert_array_equal(y, ys)
    np.testing.assert_allclose(x, reference(xs), rtol=0, atol=1e-5)


def test_jpeg_folders_decode_like_pil(tmp_path, tiny_cifar, cifar_cfg):
    from PIL import Image

    tiny_cifar.write_folders(tmp_path, ext="jpg")
    arrays = cifar10.load_arrays(parse_options(cifar10.CIFAR10Options, cifar_cfg(tmp_path), "cifar10"))
    first = sorted((tmp_path / "train" / "airplane").iterdir())[0]
    want = np.asarray(Image.open(first).convert("RGB")).transpose(2, 0, 1)
    assert arrays["train_x"].shape == (60, 3, 32, 32) and arrays["train_x"].dtype == np.uint8
    np.testing.assert_array_equal(arrays["train_x"][0], want)


def test_parallel_decoding_matches_serial(tmp_path, tiny_cifar, monkeypatch):
    tiny_cifar.write_folders(tmp_path)
    paths = sorted(str(p) for p in (tmp_path / "train").rglob("*.png"))
    serial = decode.decode_images(paths, 32, "serial")
    monkeypatch.setattr(decode, "PARALLEL_MIN", 1)
    monkeypatch.setattr(decode, "CHUNK", 16)
    monkeypatch.setattr(decode, "cpu_count", lambda: 2)
    np.testing.assert_array_equal(decode.decode_images(paths, 32, "parallel"), serial)


def test_decoded_once_then_loaded_from_cache(tmp_path, tiny_cifar, cifar_cfg, monkeypatch):
    tiny_cifar.write_folders(tmp_path / "data")
    cfg = cifar_cfg(tmp_path / "data")
    first = build(cfg)
    files = list((tmp_path / "cache").iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"
    mtime = files[0].stat().st_mtime_ns

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the cache is valid")

    monkeypatch.setattr(cifar10, "decode_images", no_decoding)
    second = build(cfg)
    assert list((tmp_path / "cache").iterdir()) == files and files[0].stat().st_mtime_ns == mtime
    a = torch.cat([x for x, _ in first.test])
    b = torch.cat([x for x, _ in second.test])
    assert torch.equal(a, b)


def test_changed_source_gets_a_new_cache(tmp_path, tiny_cifar, cifar_cfg):
    tiny_cifar.write_folders(tmp_path / "data")
    cfg = cifar_cfg(tmp_path / "data")
    build(cfg)
    extra = tmp_path / "data" / "train" / "cat" / "9999.png"
    from PIL import Image
    Image.fromarray(tiny_cifar.train_x[0]).save(extra)
    assert build(cfg).train_size == 61
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_cache_write_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "cache" / "x.npz"

    def fail_midway(f, **arrays):
        f.write(b"PK partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", fail_midway)
    with pytest.raises(OSError):
        cache_mod.save(target, {"a": np.zeros(3)})
    assert list((tmp_path / "cache").iterdir()) == []  # no truncated file, no temp left
    monkeypatch.undo()
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (replaced.append((a, b)), real_replace(a, b)))
    cache_mod.save(target, {"a": np.arange(3)})
    assert len(replaced) == 1 and replaced[0][1] == target and replaced[0][0] != str(target)
    np.testing.assert_array_equal(cache_mod.load(target)["a"], np.arange(3))


def test_unreadable_cache_is_rebuilt(tmp_path):
    target = tmp_path / "x.npz"
    target.write_bytes(b"not a zip")
    assert cache_mod.cached(target, lambda: {"a": np.ones(2)})["a"].tolist() == [1.0, 1.0]
    assert cache_mod.load(target)["a"].tolist() == [1.0, 1.0]


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_missing_data_with_download_off(tmp_path, cifar_cfg):
    with pytest.raises(DataError) as err:
        build(cifar_cfg(tmp_path / "empty"))
    msg = one_line(err)
    assert "data.root" in msg and str(tmp_path / "empty") in msg
    assert "download=false" in msg
    assert "cifar-10-batches-py" in msg and "train/<class>" in msg and "cifar10-jpeg" in msg


def test_failed_download_is_one_line_error(tmp_path, cifar_cfg, monkeypatch):
    # A closed local port: fails at once and the same way on every machine.
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "url", "http://127.0.0.1:9/cifar.tar.gz")
    with pytest.raises(DataError) as err:
        build(cifar_cfg(tmp_path / "fresh", download=True))
    msg = one_line(err)
    assert "download failed" in msg and "data.root" in msg and str(tmp_path / "fresh") in msg
    assert "cifar-10-batches-py" in msg and "train/<class>" in msg


def test_incomplete_pickled_release(tmp_path, tiny_cifar, cifar_cfg):
    folder = tiny_cifar.write_pickled(tmp_path / "cifar-10-batches-py")
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError, match="missing data_batch_3") as err:
        build(cifar_cfg(tmp_path))
    one_line(err)


def test_corrupt_pickle(tmp_path, tiny_cifar, cifar_cfg):
    folder = tiny_cifar.write_pickled(tmp_path / "cifar-10-batches-py")
    (folder / "test_batch").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataError, match="cannot read the pickled CIFAR-10") as err:
        build(cifar_cfg(tmp_path))
    one_line(err)


def test_wrong_image_size(tmp_path, tiny_cifar, cifar_cfg):
    from PIL import Image

    tiny_cifar.write_folders(tmp_path)
    Image.new("RGB", (40, 30)).save(tmp_path / "train" / "cat" / "big.png")
    with pytest.raises(DataError, match=r"40x30 pixels, expected 32x32") as err:
        build(cifar_cfg(tmp_path))
    one_line(err)


def test_folder_errors_apply_to_cifar_folders(tmp_path, tiny_cifar, cifar_cfg):
    tiny_cifar.write_folders(tmp_path)
    for f in (tmp_path / "test" / "dog").iterdir():
        f.unlink()
    with pytest.raises(DataError, match="no images in class folder.*dog") as err:
        build(cifar_cfg(tmp_path))
    one_line(err)


@pytest.mark.parametrize("padding", [-1, 32])
def test_bad_crop_padding(tmp_path, cifar_cfg, padding):
    with pytest.raises(DataError, match="crop_padding must be 0..31"):
        build(cifar_cfg(tmp_path, crop_padding=padding))


def test_class_balanced_subsets(tmp_path, tiny_cifar, cifar_cfg):
    tiny_cifar.write_pickled(tmp_path / "cifar-10-batches-py")
    data = build(cifar_cfg(tmp_path, train_subset=25, test_subset=10), batch_size=5)
    assert (data.train_size, data.test_size) == (25, 10)
    train = torch.cat([y for _, y in data.train])
    assert torch.bincount(train, minlength=10).tolist() == [3] * 5 + [2] * 5
    assert sorted(torch.cat([y for _, y in data.test]).tolist()) == list(range(10))
    with pytest.raises(DataError) as err:
        build(cifar_cfg(tmp_path, train_subset=61))
    assert "61" in str(err.value) and "60" in str(err.value)
