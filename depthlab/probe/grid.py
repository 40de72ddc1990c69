"""The probe's grid: what to probe (ProbeSettings), one network of it (ProbeConfig),
and the checked list of configurations in run order."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from depthlab.models import ARCHS, BRANCHES, LAYOUTS, NORMS, ArchitectureError
from depthlab.models.depths import densenet_spec, resnet_spec

# The story in one grid: plain vs residual on the CIFAR layout, from ResNet-20 to ResNet-1202
# (He et al. 2015, Sec. 4.2; 218 = 6*36+2), with and without batch norm.
DEFAULT_ARCHS = ("plain", "residual")
DEFAULT_DEPTHS = (20, 56, 110, 218, 1202)
DEFAULT_NORMS = ("batch", "none")
# Batch 4: the default grid (60 passes, up to 1202 layers) in under a minute on a 2-core
# CPU; batch 32 takes about 4 minutes there. Batch norm still sees 4 x 8 x 8 = 256
# values per channel in the last stage.
DEFAULT_BATCH = 4
DEFAULT_SEEDS = 3
# Passes run side by side on the CPU, one torch thread each (see run_probe).
DEFAULT_THREADS = min(2, os.cpu_count() or 1)
SHORTCUTS = ("A", "B", "C")
LOGGERS = ("none", "wandb")


class ProbeError(ValueError):
    """A probe problem the user can fix; str() is one line."""


@dataclass(frozen=True)
class ProbeSettings:
    """What to probe. shortcuts applies to residual nets only (None: the layout's
    default, A on cifar, B on imagenet); plain and dense nets have no shortcut option."""

    archs: tuple[str, ...] = DEFAULT_ARCHS
    depths: tuple[int, ...] = DEFAULT_DEPTHS
    norms: tuple[str, ...] = DEFAULT_NORMS
    shortcuts: tuple[str, ...] | None = None
    # residual branches (models.BRANCHES): standard, or the norm-free skipinit, rezero,
    # fixup (fixup only without normalisation: its pairs with norm=batch are left out)
    branches: tuple[str, ...] = ("standard",)
    seeds: int = DEFAULT_SEEDS  # initialisation seeds 0 .. seeds-1
    batch: int = DEFAULT_BATCH  # images in the one batch
    layout: str = "cifar"
    data: Mapping[str, Any] | None = None  # None: N(0, 1) images, random labels
    threads: int = DEFAULT_THREADS  # CPU: passes run side by side, one torch thread each
    device: str = "cpu"  # cpu | cuda | cuda:N | auto
    name: str | None = None
    out: str | None = None  # probe directory (default runs/probe-<name or timestamp>)
    logger: str = "none"  # none | wandb


@dataclass(frozen=True)
class ProbeConfig:
    """One network of the grid."""

    arch: str
    depth: int
    norm: str
    shortcut: str | None  # residual: A | B | C; None for plain and dense nets
    branch: str = "standard"  # residual: models.BRANCHES

    @property
    def label(self) -> str:
        parts = [self.arch, str(self.depth), f"norm={self.norm}"]
        if self.shortcut:
            parts.append(f"shortcut={self.shortcut}")
        if self.branch != "standard":
            parts.append(f"branch={self.branch}")
        return " ".join(parts)

    def run_name(self, seed: int) -> str:
        sc = f"-{self.shortcut}" if self.shortcut else ""
        br = f"-{self.branch}" if self.branch != "standard" else ""
        return f"{self.arch}{sc}{br}-{self.depth}-{self.norm}-s{seed}"


def configurations(settings: ProbeSettings) -> list[ProbeConfig]:
    """The grid in run order, checked: a bad value or an invalid depth is a ProbeError."""
    s = settings
    _check_choice("arch", s.archs, ARCHS)
    _check_choice("norm", s.norms, NORMS)
    if s.layout not in LAYOUTS:
        raise ProbeError(f"unknown layout {s.layout!r}; valid: {', '.join(LAYOUTS)}")
    if s.shortcuts is not None:
        _check_choice("shortcut", s.shortcuts, SHORTCUTS)
    _check_choice("branch", s.branches, BRANCHES)
    if set(s.branches) != {"standard"} and "residual" not in s.archs:
        raise ProbeError("branch applies to residual nets: add arch=residual")
    if s.branches == ("fixup",) and "none" not in s.norms:
        raise ProbeError("branch fixup takes no normalisation: add norm=none")
    for key in ("seeds", "batch", "threads"):
        value = getattr(s, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ProbeError(f"{key} must be a positive integer, got {value!r}")
    if not s.depths:
        raise ProbeError("depth needs at least one value, e.g. depth=20,56")
    if s.logger not in LOGGERS:
        raise ProbeError(f"unknown logger {s.logger!r}; valid: {', '.join(LOGGERS)}")
    for depth in s.depths:
        if not isinstance(depth, int) or isinstance(depth, bool):
            raise ProbeError(f"depth must be an integer, got {depth!r}")
    for arch in dict.fromkeys(s.archs):
        for depth in dict.fromkeys(s.depths):
            try:
                if arch == "dense":
                    densenet_spec(depth, s.layout)
                else:
                    resnet_spec(depth, s.layout)
            except ArchitectureError as err:
                raise ProbeError(f"{arch}: {err}") from None
    default_shortcut = "A" if s.layout == "cifar" else "B"
    out = []
    for arch in dict.fromkeys(s.archs):
        shortcuts = (tuple(dict.fromkeys(s.shortcuts or (default_shortcut,)))
                     if arch == "residual" else (None,))
        branches = tuple(dict.fromkeys(s.branches)) if arch == "residual" else ("standard",)
        for norm in dict.fromkeys(s.norms):
            for shortcut in shortcuts:
                for branch in branches:
                    if branch == "fixup" and norm != "none":
                        continue  # Fixup replaces normalisation
                    for depth in dict.fromkeys(s.depths):
                        out.append(ProbeConfig(arch, depth, norm, shortcut, branch))
    return out


def _check_choice(key: str, values: Sequence[str], valid: Sequence[str]) -> None:
    if not values:
        raise ProbeError(f"{key} needs at least one value; valid: {', '.join(valid)}")
    for v in values:
        if v not in valid:
            raise ProbeError(f"unknown {key} {v!r}; valid: {', '.join(valid)}")
