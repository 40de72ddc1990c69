"""Tiny CIFAR-10 fixtures written into tmp_path: the pickled release format and
the same images as class folders of PNG files (lossless, so both decode equal)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cifar_fixture import CLASSES, TEST_PER_CLASS, TRAIN_PER_CLASS, TinyCifar  # noqa: F401


@pytest.fixture
def tiny_cifar() -> TinyCifar:
    return TinyCifar()


@pytest.fixture
def cifar_cfg(tmp_path):
    """A cifar10 data config rooted in tmp_path, with its own cache, nothing fetched."""

    def make(root: Path, **overrides) -> dict:
        return {"name": "cifar10", "root": str(root), "download": False,
                "cache_dir": str(tmp_path / "cache"), **overrides}

    return make
