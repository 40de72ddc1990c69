"""Tiny CIFAR-10 fixtures: the pickled release format and the same images as
class folders of PNG files (lossless, so both decode equal). Shared by the data
tests and the end-to-end CLI tests (tests/ is on sys.path via tests/conftest.py)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck"]  # CIFAR-10's names, already sorted: folder order == meta order
TRAIN_PER_CLASS, TEST_PER_CLASS = 6, 3


class TinyCifar:
    """Images (N, 32, 32, 3) uint8 and labels for train and test, class-interleaved."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.classes = CLASSES
        self.train_y = np.tile(np.arange(10), TRAIN_PER_CLASS)
        self.test_y = np.tile(np.arange(10), TEST_PER_CLASS)
        self.train_x = rng.integers(0, 256, (len(self.train_y), 32, 32, 3), dtype=np.uint8)
        self.test_x = rng.integers(0, 256, (len(self.test_y), 32, 32, 3), dtype=np.uint8)

    def write_pickled(self, folder: Path) -> Path:
        """The python release layout: data_batch_1..5, test_batch, batches.meta."""
        folder.mkdir(parents=True, exist_ok=True)

        def dump(name: str, obj: dict) -> None:
            with open(folder / name, "wb") as f:
                pickle.dump(obj, f)

        # The release was pickled by Python 2; read with encoding="latin1" (as torchvision
        # does) its keys are str, so str keys here are what a reader sees of the real files.
        def batch(x: np.ndarray, y: np.ndarray) -> dict:
            # Each image is 3072 bytes: the R plane, then G, then B (row-major 32x32 each).
            return {"data": x.transpose(0, 3, 1, 2).reshape(len(x), -1).copy(),
                    "labels": [int(v) for v in y], "batch_label": "depthlab test fixture"}

        for i, part in enumerate(np.array_split(np.arange(len(self.train_y)), 5), start=1):
            dump(f"data_batch_{i}", batch(self.train_x[part], self.train_y[part]))
        dump("test_batch", batch(self.test_x, self.test_y))
        dump("batches.meta", {"label_names": list(self.classes), "num_vis": 3072})
        return folder

    def write_folders(self, root: Path, ext: str = "png") -> Path:
        """train/<class>/NNNN.<ext> and test/<class>/NNNN.<ext>."""
        for split, xs, ys in (("train", self.train_x, self.train_y), ("test", self.test_x, self.test_y)):
            for i, (x, y) in enumerate(zip(xs, ys)):
                folder = root / split / self.classes[y]
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(x).save(folder / f"{i:04d}.{ext}")
        return root

    def in_folder_order(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels in ImageFolder's order (by class, then file name)."""
        xs, ys = getattr(self, f"{split}_x"), getattr(self, f"{split}_y")
        order = np.argsort(ys, kind="stable")
        return xs[order], ys[order]
