"""Gradient flow at initialisation, for a grid of networks, in seconds (`depthlab probe`).

Training a 1,000-layer net takes days; whether gradients reach its first layer
shows before the first update. For every configuration (architecture x depth x
normalisation x shortcut option) and every initialisation seed, `run_probe`
builds the net exactly as a training run with that seed would (same builder,
same `torch.manual_seed(seed)` just before it), makes one forward and backward
pass of cross-entropy on one batch in training mode, and reads per weighted
layer (depth order, from `describe`) the gradient norm and per block the output
standard deviation with `GradFlowProbe`, the probe training runs use.

    >>> settings = ProbeSettings(archs=("plain", "residual"), depths=(20, 56), seeds=2)
    >>> result = run_probe(settings)            # a ProbeResult
    >>> paths = write_probe(result, "runs/probe-demo")

The batch is N(0, 1) images with uniform random labels (`data=None`), or the
first training batch of a real data set (a `data` config mapping, as
`depthlab.data.build_data` takes it). Seed s uses the same batch for every
configuration, so configurations are compared on equal inputs.

Numbers are float32, as in training: where a net's activations or gradients
leave float32's range (about 1e-38 .. 3e38) the ratio is non-finite and the
summary says which end overflowed or underflowed, rather than guessing.

The package, one job per module (in brackets: what each imports):

    grid      settings, the checked grid of configurations   (models)
    measure   batches, probe_once, run_probe, summarise       (grid; gradflow, models, data, train)
    findings  what the summary says, in words                 (pandas only)
    figures   the three figures                               (measure; the only user of plots)
    report    the probe directory, report.md, the W&B run     (the above; tracking, analysis)
"""

from __future__ import annotations

from .figures import FIGURES, NORM_STYLE, NORM_WORDS, SHORTCUT_COLOURS, make_figures, plot_profiles
from .findings import findings
from .grid import (
                   DEFAULT_ARCHS,
                   DEFAULT_BATCH,
                   DEFAULT_DEPTHS,
                   DEFAULT_NORMS,
                   DEFAULT_SEEDS,
                   DEFAULT_THREADS,
                   LOGGERS,
                   SHORTCUTS,
                   ProbeConfig,
                   ProbeError,
                   ProbeSettings,
                   configurations,
)
from .measure import BLOCK_COLUMNS, LAYER_COLUMNS, ProbeResult, probe_once, run_probe, summarise
from .report import (
                   MARKER,
                   TABLE_HEADERS,
                   check_dir,
                   default_dir,
                   log_wandb,
                   prepare_dir,
                   report_markdown,
                   table_rows,
                   write_probe,
                   write_runs,
)

__all__ = [
    "BLOCK_COLUMNS", "DEFAULT_ARCHS", "DEFAULT_BATCH", "DEFAULT_DEPTHS", "DEFAULT_NORMS",
    "DEFAULT_SEEDS", "DEFAULT_THREADS", "FIGURES", "LAYER_COLUMNS", "LOGGERS", "MARKER",
    "NORM_STYLE", "NORM_WORDS", "SHORTCUTS", "SHORTCUT_COLOURS", "TABLE_HEADERS", "ProbeConfig",
    "ProbeError", "ProbeResult", "ProbeSettings", "check_dir", "configurations", "default_dir",
    "findings", "log_wandb", "make_figures", "plot_profiles", "prepare_dir", "probe_once",
    "report_markdown", "run_probe", "summarise", "table_rows", "write_probe", "write_runs",
]
