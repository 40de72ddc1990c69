"""The device-resident loader: crop + flip against a per-sample reference,
normalisation, batch counts, and epoch determinism (the resume property)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from depthlab.data.base import epoch_generator
from depthlab.data.device_loader import DeviceLoader, crop_flip

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def images(n: int = 40, c: int = 3, h: int = 12, w: int = 10, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


def reference_crop_flip(x: torch.Tensor, p: int, dy: int, dx: int, flip: bool) -> torch.Tensor:
    """One sample the slow, obvious way: zero-pad, slice, flip."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (p, p, p, p))
    crop = padded[:, p + dy:p + dy + h, p + dx:p + dx + w]
    return crop.flip(-1) if flip else crop


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("padding", [0, 1, 4])
def test_crop_flip_matches_per_sample_reference(device, padding):
    x = images().to(device)
    g = torch.Generator().manual_seed(1)
    b = 25
    index = torch.randperm(len(x), generator=g)[:b]
    dy = torch.randint(-padding, padding + 1, (b,), generator=g)
    dx = torch.randint(-padding, padding + 1, (b,), generator=g)
    if padding:  # make sure the extremes are covered
        dy[:2], dx[:2] = torch.tensor([-padding, padding]), torch.tensor([padding, -padding])
    flip = torch.rand(b, generator=g) < 0.5
    flip[:2] = torch.tensor([True, False])
    out = crop_flip(x, index.to(device), padding, dy.to(device), dx.to(device), flip.to(device))
    assert out.shape == (b, 3, 12, 10) and out.dtype == torch.uint8 and out.device.type == device
    for i in range(b):
        want = reference_crop_flip(x[index[i]].cpu(), padding, int(dy[i]), int(dx[i]), bool(flip[i]))
        assert torch.equal(out[i].cpu(), want), f"sample {i}"


def test_loader_batches_equal_reference_for_the_epochs_draws():
    """The whole path: permutation, offsets and flips of the epoch, then normalisation."""
    x, y = images(), torch.arange(40) % 4
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    loader = DeviceLoader(x, y, batch_size=16, mean=mean, std=std, train=True, seed=7,
                          crop_padding=3, flip=True)
    loader.set_epoch(5)
    g = epoch_generator(7, 5)  # the draws the loader documents, in its order
    order = torch.randperm(40, generator=g)
    dy = torch.randint(-3, 4, (40,), generator=g)
    dx = torch.randint(-3, 4, (40,), generator=g)
    flip = torch.rand(40, generator=g) < 0.5
    batches = list(loader)
    assert len(batches) == len(loader) == 2  # 40 // 16, the last 8 dropped
    m = np.array(mean).reshape(3, 1, 1)
    s = np.array(std).reshape(3, 1, 1)
    for k, (xb, yb) in enumerate(batches):
        for j in range(16):
            i = k * 16 + j
            raw = reference_crop_flip(x[order[i]], 3, int(dy[i]), int(dx[i]), bool(flip[i]))
            want = (raw.numpy().astype(np.float64) / 255 - m) / s
            np.testing.assert_allclose(xb[j].numpy(), want, rtol=0, atol=1e-5)
            assert yb[j] == y[order[i]]


def batches_of(loader: DeviceLoader, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader.set_epoch(epoch)
    return list(loader)


def same(a, b) -> bool:
    return all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))


@pytest.mark.parametrize("augment", [False, True])
def test_epochs_are_pure_functions_of_seed_and_epoch(augment):
    x, y = images(), torch.arange(40)

    def loader(seed: int) -> DeviceLoader:
        return DeviceLoader(x, y, batch_size=8, mean=(0.5,) * 3, std=(0.25,) * 3, train=True,
                            seed=seed, crop_padding=2 if augment else 0, flip=augment)

    run = loader(0)
    e1 = batches_of(run, 1)
    assert same(e1, batches_of(run, 1))  # same epoch again: same batches
    e2 = batches_of(run, 2)
    assert not torch.equal(torch.cat([b for _, b in e1]), torch.cat([b for _, b in e2]))
    # a fresh loader (a resumed run) at epoch 2 replays epoch 2 exactly,
    # however much the global RNG was used meanwhile
    torch.manual_seed(123)
    torch.rand(1000)
    assert same(e2, batches_of(loader(0), 2))
    assert not same(e1, batches_of(loader(1), 1))  # another seed, another order


def test_loader_leaves_the_global_rng_alone():
    x, y = images(), torch.arange(40)
    loader = DeviceLoader(x, y, batch_size=8, mean=(0.5,) * 3, std=(0.25,) * 3, train=True,
                          crop_padding=2, flip=True)
    state = torch.get_rng_state()
    list(loader)
    assert torch.equal(state, torch.get_rng_state())


def test_test_loader_keeps_everything_in_order():
    x, y = images(n=21), torch.arange(21)
    loader = DeviceLoader(x, y, batch_size=8, mean=(0.0,) * 3, std=(1.0,) * 3, train=False,
                          crop_padding=4, flip=True)  # augmentation is ignored for evaluation
    assert len(loader) == 3
    loader.set_epoch(9)
    xs, ys = zip(*loader)
    assert [len(b) for b in ys] == [8, 8, 5]
    assert torch.equal(torch.cat(ys), y)
    assert torch.allclose(torch.cat(xs), x.float() / 255)


@pytest.mark.parametrize("device", DEVICES)
def test_batches_stay_on_the_device(device):
    x, y = images().to(device), torch.arange(40, device=device)
    loader = DeviceLoader(x, y, batch_size=8, mean=(0.5,) * 3, std=(0.25,) * 3, train=True,
                          crop_padding=2, flip=True)
    xb, yb = next(iter(loader))
    assert xb.device.type == yb.device.type == device
    assert xb.dtype == torch.float32 and yb.dtype == torch.int64


def test_same_batches_on_every_device():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    x, y = images(), torch.arange(40)
    kw = dict(batch_size=8, mean=(0.5,) * 3, std=(0.25,) * 3, train=True, seed=3,
              crop_padding=2, flip=True)
    cpu = batches_of(DeviceLoader(x, y, **kw), 4)
    gpu = batches_of(DeviceLoader(x.cuda(), y.cuda(), **kw), 4)
    for (xc, yc), (xg, yg) in zip(cpu, gpu):
        assert torch.equal(yc, yg.cpu()) and torch.allclose(xc, xg.cpu(), atol=1e-6)
