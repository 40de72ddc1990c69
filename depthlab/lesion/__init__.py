"""Deleting one block at a time from a trained net (`depthlab lesion`).

Veit, Wilber and Belongie 2016 ("Residual networks behave like ensembles of
relatively shallow networks", Sec. 4, Fig. 3): removing a single block from a
trained residual net barely changes its test error, except for the blocks that
downsample, while removing a layer from a plain net drops it to chance.

    >>> run = load_run("runs/residual-56-s0")
    >>> table = lesion(run)          # one row for the intact net, one per block

A deleted residual block keeps only its shortcut: output = shortcut(x), which is
x itself, the zero-padding shortcut (option A) or the projection (B/C), as the
block's own forward computes it (pre-activation blocks feed a projection their
pre-activated input, so that stays too). Every other block is treated as a
post-activation block and keeps a ReLU after the shortcut (cut.shortcut_path): on a
projection that is the block's own ReLU after the addition; on x and on option A it
changes nothing where the block's input is a ReLU's output (He et al.'s blocks and
SkipInit's). ReZero blocks (no ReLU after the sum, so their input can be negative) and
Fixup's downsampling blocks (their shortcut reads x plus a learnt bias) get the same
relu(shortcut(x)), which is not their own path. A plain block has no shortcut:
it is replaced by the identity where its input and output shapes agree and is
"n/a" where it changes them (stride 2, more channels). A deletion is a temporary
forward override on the block's module, undone on exit; the model is never copied.

    cut     loading a trained run, the blocks and what deleting each means, the deletion,
            the test error of the intact and the lesioned net (`lesion`)
    report  the verdict against the paper, lesion.png and lesion.csv, `run_lesion` over runs
"""

from __future__ import annotations

from .cut import (
    COLUMNS,
    BlockInfo,
    LesionError,
    LoadedRun,
    blocks_of,
    lesion,
    lesioned,
    load_run,
    loss_and_error,
    shortcut_path,
)
from .report import (
    BARELY_HURTS,
    COLLAPSE,
    NEAR_CHANCE,
    PAPER,
    plot_lesion,
    run_lesion,
    verdict,
    write_lesion,
)

__all__ = [
    "BARELY_HURTS", "COLLAPSE", "COLUMNS", "NEAR_CHANCE", "PAPER", "BlockInfo", "LesionError",
    "LoadedRun", "blocks_of", "lesion", "lesioned", "load_run", "loss_and_error", "plot_lesion",
    "run_lesion", "shortcut_path", "verdict", "write_lesion",
]
