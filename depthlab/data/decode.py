"""Decode many small image files into one uint8 NCHW array: in worker
processes (PIL holds the GIL, so threads do not help), with a progress bar on a
terminal and a log line otherwise."""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import numpy as np
from PIL import Image

from depthlab.console import console

from .base import DataError

log = logging.getLogger("depthlab")

PARALLEL_MIN = 4096  # images; below this, starting worker processes costs more than it saves
CHUNK = 1000  # images per task sent to a worker


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))  # respects taskset / container CPU limits
    except AttributeError:
        return os.cpu_count() or 1


def _decode_chunk(paths: Sequence[str], size: int) -> np.ndarray:
    out = np.empty((len(paths), 3, size, size), np.uint8)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB"))
        except Exception as err:  # PIL raises OSError, SyntaxError, ValueError... for bad files
            raise DataError(f"cannot decode image {path}: {err}") from None
        if arr.shape[:2] != (size, size):
            raise DataError(f"image {path} is {arr.shape[1]}x{arr.shape[0]} pixels, "
                            f"expected {size}x{size}")
        out[i] = arr.transpose(2, 0, 1)
    return out


@contextmanager
def _progress(total: int, description: str) -> Iterator[Callable[[int], None]]:
    started = time.perf_counter()
    if console.is_terminal:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), console=console, transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda k: bar.advance(task, k)
    else:
        log.info("%s: %d images ...", description, total)
        yield lambda k: None
    log.info("%s: %d images in %.1f s", description, total, time.perf_counter() - started)


def decode_images(paths: Sequence[str], size: int, description: str) -> np.ndarray:
    """(N, 3, size, size) uint8 from RGB-convertible image files of size x size pixels."""
    out = np.empty((len(paths), 3, size, size), np.uint8)
    starts = range(0, len(paths), CHUNK)
    chunks = [paths[i:i + CHUNK] for i in starts]
    workers = min(len(chunks), cpu_count(), 8) if len(paths) >= PARALLEL_MIN else 1
    with _progress(len(paths), description) as advance:
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                for i, arr in zip(starts, pool.map(_decode_chunk, chunks, [size] * len(chunks))):
                    out[i:i + len(arr)] = arr
                    advance(len(arr))
        else:
            for i, chunk in zip(starts, chunks):
                out[i:i + len(chunk)] = _decode_chunk(chunk, size)
                advance(len(chunk))
    return out
