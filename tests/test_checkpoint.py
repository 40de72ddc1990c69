"""Checkpoints: atomic, safe to load, corruption detected with a fallback."""

import logging

import torch

from depthlab.checkpoint import CHECKPOINT, PREVIOUS, load_checkpoint, save_checkpoint


def test_roundtrip_and_previous_kept(tmp_path):
    save_checkpoint(tmp_path, {"model": {"w": torch.ones(2)}, "epoch": 1})
    save_checkpoint(tmp_path, {"model": {"w": torch.full((2,), 2.0)}, "epoch": 2})
    state = load_checkpoint(tmp_path)
    assert state["epoch"] == 2 and torch.equal(state["model"]["w"], torch.full((2,), 2.0))
    assert torch.load(tmp_path / PREVIOUS, weights_only=True)["epoch"] == 1
    assert not list(tmp_path.glob(".*tmp*"))  # no temp file left behind


def test_truncated_checkpoint_falls_back_to_previous(tmp_path, caplog):
    save_checkpoint(tmp_path, {"model": {}, "epoch": 1})
    save_checkpoint(tmp_path, {"model": {}, "epoch": 2})
    data = (tmp_path / CHECKPOINT).read_bytes()
    (tmp_path / CHECKPOINT).write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="depthlab"):
        state = load_checkpoint(tmp_path)
    assert state["epoch"] == 1
    assert "corrupt checkpoint" in caplog.text and "previous checkpoint" in caplog.text


def test_all_corrupt_starts_from_scratch(tmp_path, caplog):
    (tmp_path / CHECKPOINT).write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.WARNING, logger="depthlab"):
        assert load_checkpoint(tmp_path) is None
    assert "starting this run from scratch" in caplog.text


def test_arbitrary_pickles_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("owned",))
    torch.save({"format": 1, "model": {}, "x": Evil()}, tmp_path / CHECKPOINT)
    assert load_checkpoint(tmp_path) is None
