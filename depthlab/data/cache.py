"""Decoded data sets kept on disk as uint8 arrays, so a data set is decoded once.

A cache file is named by a fingerprint of its source (resolved path, and every
file's relative path, size and modification time), so an edited, added or
removed source file makes a new cache instead of a stale read. Files are written
to a temporary name and renamed: a run killed mid-write, or two runs writing at
once, never leave a truncated cache behind.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

# Bump when what is cached changes (layout, dtype, decoding), to orphan old files.
CACHE_VERSION = 1


def fingerprint(kind: str, root: Path, files: Iterable[str | Path]) -> str:
    """Hex digest of (kind, resolved root, path below root + size + mtime of each file)."""
    h = hashlib.sha256(f"v{CACHE_VERSION}\0{kind}\0{root.resolve()}\0".encode())
    prefix = os.path.join(str(root), "")
    for path in map(str, files):
        st = os.stat(path)
        name = path[len(prefix):] if path.startswith(prefix) else path
        h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` as an uncompressed .npz (fast to load), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def cached(path: Path, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays at `path`, made by `build()` and saved there the first time."""
    if path.is_file():
        try:
            return load(path)
        except (OSError, ValueError, zipfile.BadZipFile):
            pass  # unreadable (e.g. a disk-full copy from elsewhere): make it again
    arrays = build()
    save(path, arrays)
    return arrays
