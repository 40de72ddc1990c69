"""Groups of runs compared: one value per seed for a variant at a depth, and whether two
groups differ beyond the seeds' spread and the errors' own sampling noise (the rules are in
verdict.py's docstring). What verdict.py and numerics.py both judge with."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .aggregation import _fixed, counted
from .runs import KNOWN_CLASSES

# A net within this many points of chance training error did not train: no verdict on it.
CHANCE_MARGIN = 0.02
MIN_DECADES = math.log10(2)  # gradient-ratio changes below a factor of 2 are not called
# An error-rate difference is called only beyond this many standard errors of sampling noise.
NOISE_SE = 2
# The images an error column was measured on: the table columns to read N from, first found.
ERROR_IMAGES = {"final_train_error": ("train_size", "train_subset"),
                "final_test_error": ("test_size",)}


@dataclass(frozen=True)
class Verdict:
    """One finding in words. holds: True / False, or None when the numbers cannot tell."""

    kind: str  # degradation | plain_vs_<arch> | vanishing | excluded | none
    holds: bool | None
    text: str
    subject: str = ""  # the variant (or depth) it is about

    def __str__(self) -> str:
        return self.text


@dataclass
class Group:
    label: str  # e.g. plain-56
    values: list[float]
    chance: float | None = None  # training error of guessing (1 - 1/classes); None: unknown
    images: list[int | None] = field(default_factory=list)  # N of each value (error rates only)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def range(self) -> float:
        return max(self.values) - min(self.values)

    @property
    def sampling_se(self) -> float | None:
        """Binomial standard error of the mean error rate, sqrt(sum p(1-p)/N) / n; None
        when a value's N is unknown (not an error rate, or a run that does not record it)."""
        if len(self.images) != self.n or not all(self.images):
            return None
        return math.sqrt(sum(p * (1 - p) / n for p, n in zip(self.values, self.images))) / self.n

    @property
    def at_chance(self) -> bool:
        """Training error within CHANCE_MARGIN of guessing: the net did not train."""
        return self.chance is not None and self.mean >= self.chance - CHANCE_MARGIN


@dataclass
class Diff:
    diff: float  # b - a
    spread: float | None  # larger max-min of the groups with >= 2 values; None: single seeds
    threshold: float
    noise: float | None = None  # NOISE_SE combined standard errors; None: not judged
    images: str = ""  # the N behind `noise`, in words: "3,000 images each"

    @property
    def called(self) -> bool:
        return abs(self.diff) > self.threshold and not self.within_noise

    @property
    def within_spread(self) -> bool:
        return self.spread is not None and abs(self.diff) <= self.spread

    @property
    def within_noise(self) -> bool:
        return self.noise is not None and abs(self.diff) <= self.noise


def compare(a: Group, b: Group, minimum: float = 0.0) -> Diff:
    ranges = [g.range for g in (a, b) if g.n >= 2]
    spread = max(ranges) if ranges else None
    noise, images = None, ""
    if a.sampling_se is not None and b.sampling_se is not None:
        noise = NOISE_SE * math.hypot(a.sampling_se, b.sampling_se)
        sizes = sorted({int(n) for n in (*a.images, *b.images)})
        images = (f"{sizes[0]:,} images each" if len(sizes) == 1 else
                  f"{sizes[0]:,} and {sizes[1]:,} images" if len(sizes) == 2 else
                  f"{sizes[0]:,} to {sizes[-1]:,} images")
    return Diff(b.mean - a.mean, spread, max(spread or 0.0, minimum), noise, images)


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def pts(x: float) -> str:
    return f"{100 * abs(x):.1f}"


def exp10(x: float) -> str:
    return "10^" + _fixed(x, 1)


def seeds_note(a: Group, b: Group, d: Diff, *, unit: str, fmt) -> str:
    """How many seeds stand behind a comparison and how the spread (and, where it decides,
    the sampling noise) bears on it."""
    counts = ("single seed" if d.spread is None else
              f"means of {a.n} and {b.n} seeds" if a.n != b.n else f"means of {a.n} seeds each")
    spread = "" if d.spread is None else f"the seeds' spread (max - min) of {fmt(d.spread)} {unit}"
    if d.within_noise:
        noise = (f"the difference of {fmt(d.diff)} {unit} is within {NOISE_SE} standard errors "
                 f"of sampling noise ({fmt(d.noise)} {unit} on {d.images})")
        if spread:
            noise += f" and {spread}" if d.within_spread else f", though it exceeds {spread}"
        return f"{counts}; {noise}"
    if d.spread is None:
        return f"single seed: no spread to judge the difference of {fmt(d.diff)} {unit} against"
    rel = "is within" if d.within_spread else "exceeds"
    return f"{counts}; the difference of {fmt(d.diff)} {unit} {rel} {spread}"


def nets_label(arch: str, settings: str, capital: bool = False) -> str:
    name = f"{arch.capitalize() if capital else arch} nets"
    return f"{name} ({settings})" if settings else name


def error_groups(table: pd.DataFrame, column: str) -> dict[tuple[str, str, str], dict[int, Group]]:
    """(variant, arch, settings) -> depth -> values of `column` over completed runs."""
    out: dict[tuple[str, str, str], dict[int, Group]] = {}
    ok = counted(table)
    ok = ok[ok[column].notna()]
    for (variant, depth), g in ok.groupby(["variant", "depth"], sort=False):
        key = (variant, g["arch"].iloc[0], g["settings"].iloc[0])
        out.setdefault(key, {})[int(depth)] = Group(f"{g['arch'].iloc[0]}-{int(depth)}",
                                                      [float(v) for v in g[column]],
                                                      chance_error(g.iloc[0]),
                                                      [images_of(r, column) for _, r in g.iterrows()])
    return {k: dict(sorted(v.items())) for k, v in out.items()}


def count(value) -> int | None:
    """A positive whole number from the table, or None (missing, NaN, not a number)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if math.isfinite(number) and number >= 1 else None


def images_of(row: pd.Series, column: str) -> int | None:
    """N: the images the run measured `column` on (see the module docstring); None if unknown."""
    n = next((c for c in (count(row.get(k)) for k in ERROR_IMAGES.get(column, ())) if c), None)
    batch = count(row.get("batch_size"))
    if n is None or column != "final_train_error" or batch is None or batch > n:
        return n
    per_epoch = n // batch  # whole batches only: the last incomplete one is dropped
    steps, epochs = count(row.get("steps_completed")), count(row.get("epochs_completed"))
    last = steps - (epochs - 1) * per_epoch if steps and epochs else per_epoch
    return batch * (last if 0 < last <= per_epoch else per_epoch)


def chance_error(row: pd.Series) -> float | None:
    """1 - 1/classes of the run's data set (summary.json's num_classes, else KNOWN_CLASSES)."""
    classes = row.get("num_classes")
    if classes is None or classes != classes:
        classes = KNOWN_CLASSES.get(str(row.get("data")))
    return 1.0 - 1.0 / float(classes) if classes else None


def untrained_note(a: Group, b: Group) -> str | None:
    """When both nets stayed at chance, the words saying so (no verdict can be drawn)."""
    if not (a.at_chance and b.at_chance):
        return None
    return (f"cannot tell - {a.label} and {b.label} both stayed at chance "
            f"({pct(a.mean)} and {pct(b.mean)} training error; guessing gives "
            f"{pct(a.chance)}): neither trained, so depth or shortcuts made no difference "
            "that these runs can show")
