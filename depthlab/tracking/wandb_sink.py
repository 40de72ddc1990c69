"""Weights & Biases sink: one W&B run per depthlab run, with gradient-flow panels.

Made by the training loop when `logger.wandb.mode` is not `disabled`, and
always wrapped in `tracking.safe.SafeSink`: any W&B trouble (no network, full
disk, an exception inside wandb) becomes one warning and the sink goes quiet;
the run and its local files go on.

The mode: `auto` (the default) follows W&B's own convention, as `resolve_mode`
says: WANDB_MODE when it is set, else online where W&B finds an API key
(WANDB_API_KEY or what `wandb login` saved), else offline with a one-line hint.
An explicit `logger.wandb.mode=online|offline|disabled` wins over all of them.
Offline, the run is written under `<dir>/wandb/offline-run-<time>-<id>/` and
uploaded later with `wandb sync <that folder>` (or a whole sweep's with
`depthlab dashboard --sync`).

What a W&B run holds (key: x axis it is plotted against):

    train/loss, train/error, train/lr, train/images_per_sec, train/epoch   : train/step
    epoch/train_loss, epoch/train_error, epoch/test_loss, epoch/test_error,
      epoch/lr, epoch/images_per_sec, epoch/epoch_seconds, epoch/wall_seconds : epoch
    gradflow/grad_norm/L007_layer2.0.conv2   gradient norm of one layer    : train/step
    gradflow/act_std/B003_layer2.0           output std of one block       : train/step
    gradflow/back_norm/B003_layer2.0         ||dL/dh|| at one block's output: train/step
    gradflow/ratio_first_last, gradflow/log10_ratio_first_last
                                             first / last main-path layer  : train/step
    gradflow_by_layer/table     per epoch, one row per layer (the epoch's last record)
    gradflow_by_layer/chart     log10 gradient norm vs layer index, a line per epoch
    gradflow_by_layer/heatmap   image: layer (rows, depth order) x recorded step,
                                colour = log10 gradient norm (the report's heatmap,
                                drawn by depthlab.plots)
    summary                     the run's summary.json numbers: final and best
                                errors, grad ratios first/last (init, end, log10),
                                diverged, status, params, flops, ...

`train/step` is the step number the local files use: steps done for the
train/* metrics (metrics_steps.csv), the 0-based index of the recorded step for
gradflow/* (gradflow.csv). Layer keys are "L" + layer.index zero-padded to 3
digits (more past depth 999) + "_" + module path, so that W&B's alphabetical
panel order is depth order; a shortcut projection shares the index of its
block's last conv and differs by name. Block keys are "B" + the block's row in
blocks.csv (0-based) + "_" + module path. `logger.wandb.series` picks which
per-layer series are logged (hundreds of panels get slow in the W&B UI).

Identity: `<run_dir>/wandb_id.txt` holds the W&B run id. A resumed depthlab run
(RunInfo.resumed_from_step set) continues the same W&B run (resume="allow";
offline this writes a second folder with the same id, which `wandb sync`
uploads after the first); a fresh start gets a new id. W&B's own step is the
training step (never decreasing), so a resumed part continues from the
checkpoint's step; online, W&B ignores steps it already holds. On resume the heatmap and chart are rebuilt from the run
directory's gradflow.csv, so they cover the whole run.

Several runs in one process (Hydra multirun): each `start` makes its own run
(reinit="create_new") and `finish` finishes that run object, never the global.

wandb is imported when a run starts, so that `WandbConfig.from_mapping` can
check a config without it.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import secrets
import string
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from depthlab import rundir
from depthlab.rundir import atomic_write, first_last_ratio, log10

from . import RunInfo, resolved_config

if TYPE_CHECKING:  # for annotations only: importing the sink loads no torch
    from depthlab.models import Layer

log = logging.getLogger("depthlab")

MODES = ("auto", "offline", "online", "disabled")
# WANDB_MODE as W&B itself reads it ("dryrun" and "run" are its older names)
ENV_MODES = {"online": "online", "run": "online", "offline": "offline", "dryrun": "offline",
             "disabled": "disabled"}
SERIES = ("grad_norm", "weight_norm", "ratio", "act_std", "back_norm")
BLOCK_SERIES = ("act_std", "back_norm")  # one value per block, not per layer
TABLE_COLUMNS = ["layer_index", "layer", "stage", "shortcut", "grad_norm", "weight_norm", "ratio",
                 "act_std", "back_norm", "step", "epoch"]
HEATMAP_COLUMNS = 512  # most recorded steps drawn in the heatmap (evenly thinned past that)
HEATMAP_TICKS = 40  # most layer names written on its y axis


@dataclass(frozen=True)
class WandbConfig:
    """`logger.wandb` (see conf/logger/default.yaml for what each key means)."""

    mode: str = "auto"
    project: str = "depthlab"
    entity: str | None = None
    tags: tuple[str, ...] = ()
    dir: str | None = None
    series: tuple[str, ...] = ("grad_norm", "act_std", "back_norm")
    heatmap_every: int = 1
    chart_curves: int = 8
    init_timeout: float = 60.0
    finish_timeout: float = 300.0

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any] | None) -> "WandbConfig":
        """Check keys and values; a typo is a ValueError naming the key."""
        cfg = dict(cfg or {})
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(cfg) - set(known))
        if unknown:
            raise ValueError(f"unknown logger.wandb key(s) {', '.join(unknown)}; "
                             f"keys: {', '.join(known)}")
        c = cls(**{k: tuple(v or ()) if k in ("tags", "series") else v for k, v in cfg.items()})
        if c.mode not in MODES:
            raise ValueError(f"logger.wandb.mode must be one of {', '.join(MODES)}, got {c.mode!r}")
        bad = [s for s in c.series if s not in SERIES]
        if bad:
            raise ValueError(f"logger.wandb.series: unknown {', '.join(map(repr, bad))}; "
                             f"valid: {', '.join(SERIES)}")
        if not all(isinstance(t, str) and t for t in c.tags):
            raise ValueError(f"logger.wandb.tags must be non-empty strings, got {list(c.tags)!r}")
        for key, low in (("heatmap_every", 0), ("chart_curves", 1)):
            value = getattr(c, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"logger.wandb.{key} must be an integer >= {low}, got {value!r}")
        for key, low in (("init_timeout", 1e-9), ("finish_timeout", 0.0)):
            value = getattr(c, key)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < low:
                raise ValueError(f"logger.wandb.{key} must be a number of seconds "
                                 f"{'> 0' if low else '>= 0'}, got {value!r}")
        return c


def _width(n: int) -> int:
    return max(3, len(str(n)))


def layer_keys(layers: list[Layer], stat: str = "grad_norm") -> list[str]:
    """`gradflow/<stat>/L007_layer2.0.conv2`, one key per layer, in the order of `layers`."""
    w = _width(max((layer.index for layer in layers), default=0))
    return [f"gradflow/{stat}/L{layer.index:0{w}d}_{layer.name}" for layer in layers]


def block_keys(blocks: list[str], stat: str = "act_std") -> list[str]:
    """`gradflow/<stat>/B003_layer2.0`, one key per block (its row in blocks.csv)."""
    w = _width(len(blocks) - 1)
    return [f"gradflow/{stat}/B{i:0{w}d}_{block}" for i, block in enumerate(blocks)]


def layer_blocks(layers: list[Layer], blocks: list[str]) -> list[int | None]:
    """For each layer, the row of the innermost block holding it (None: stem, head)."""
    out: list[int | None] = []
    for layer in layers:
        best = None
        for i, block in enumerate(blocks):
            inside = layer.name.startswith(block + ".")
            if inside and (best is None or len(block) > len(blocks[best])):
                best = i
        out.append(best)
    return out


def _number(value: Any) -> float | None:
    """A finite float, or None (W&B panels and tables choke on NaN/inf)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _scalars(d: Mapping[str, Any]) -> dict[str, Any]:
    """The summary's plain values (None and non-finite numbers left out)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, bool) or isinstance(v, str):
            out[k] = v
        elif isinstance(v, (int, float)) and (isinstance(v, int) or math.isfinite(v)):
            out[k] = v
    return out


def new_run_id() -> str:
    """A fresh W&B run id: 8 random lowercase letters and digits, as W&B makes them."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


def has_api_key() -> bool | None:
    """Whether W&B finds an API key for its base URL (WANDB_API_KEY, or the netrc entry
    `wandb login` writes), without prompting and without the network; None when this
    wandb version cannot say."""
    import wandb

    try:
        from wandb.sdk.lib import wbauth

        base_url = wandb.setup().settings.base_url
        auth = wbauth.authenticate_session(host=base_url, source="depthlab", prompt=False)
    except (ImportError, AttributeError, TypeError):  # another wandb version: wandb.init decides
        return None
    return auth is not None


def resolve_mode(mode: str) -> tuple[str, str]:
    """(offline | online | disabled, why) for `logger.wandb.mode`. An explicit mode is
    itself; `auto` is WANDB_MODE when set, else online where W&B finds an API key, else
    offline. A WANDB_MODE that W&B would not accept is a ValueError naming the valid ones."""
    if mode != "auto":
        return mode, f"logger.wandb.mode={mode}"
    env = os.environ.get("WANDB_MODE", "").strip()
    if env:
        if env.lower() not in ENV_MODES:
            raise ValueError(f"WANDB_MODE={env!r} is not a W&B mode; valid: "
                             f"{', '.join(ENV_MODES)} (or unset it)")
        return ENV_MODES[env.lower()], f"WANDB_MODE={env}"
    key = has_api_key()
    if key:
        return "online", "W&B found an API key"
    return "offline", ("no W&B API key: `wandb login` to log online" if key is False else
                       "this wandb version does not say whether an API key is set")


def _check_credentials() -> None:
    """Online mode: fail at once when W&B has no API key, instead of wandb.init
    prompting for one in the middle of a run (or a sweep)."""
    if has_api_key() is False:
        raise RuntimeError("online mode needs a W&B API key: run `wandb login` or set "
                           "WANDB_API_KEY (or use logger.wandb.mode=offline and `wandb sync` "
                           "later)")


class WandbSink:
    """One W&B run per depthlab run. Methods raise on W&B trouble: wrap in SafeSink."""

    def __init__(self, cfg: Mapping[str, Any] | None = None) -> None:
        self.cfg = WandbConfig.from_mapping(cfg)
        self.mode = self.cfg.mode  # `auto` becomes offline/online/disabled when the run starts
        self.run: Any = None  # the wandb Run while one is open
        self.sync_dir: Path | None = None  # where this run's W&B files are
        self._info: RunInfo | None = None
        self._step = 0  # W&B's step: never goes backwards
        self._records: list[tuple[int, int, np.ndarray]] = []  # (step, epoch, grad norms)
        self._epoch_last: dict[int, int] = {}  # epoch -> index into _records of its last record
        self._last = None  # the latest GradFlowRecord and its epoch
        self._heatmap_records = 0  # len(_records) when the last heatmap was drawn

    # -- the sink protocol ---------------------------------------------------------------

    def start(self, run: RunInfo) -> None:
        c = self.cfg
        self._info = run
        self._keys = {stat: layer_keys(run.layers, stat) for stat in ("grad_norm", "weight_norm",
                                                                        "ratio")}
        self._block_keys = {stat: block_keys(run.blocks, stat) for stat in BLOCK_SERIES}
        self._layer_block = layer_blocks(run.layers, run.blocks)
        self.mode, why = resolve_mode(c.mode)
        if self.mode == "disabled":
            return
        import wandb

        if run.resumed_from_step is not None:
            self._step = int(run.resumed_from_step)
            self._load_history(run)
        if self.mode == "online":
            _check_credentials()
        root = Path(c.dir or os.environ.get("WANDB_DIR") or run.run_dir).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        arch = (run.config.get("arch") or {}).get("name") or run.description.get("arch")
        self.run = wandb.init(
            project=c.project, entity=c.entity, group=run.group, job_type=arch, name=run.name,
            config=resolved_config(run), tags=list(c.tags), dir=str(root), mode=self.mode,
            id=self._run_id(run), resume="allow", reinit="create_new",
            settings=wandb.Settings(
                init_timeout=float(c.init_timeout),  # online: bounded wait for the server
                finish_timeout=float(c.finish_timeout),  # online: bounded wait for uploads
                console="off",  # the run's log file is in the run directory already
                silent=True,  # no banners or per-run history printout; we log one line
            ),
        )
        r = self.run
        r.define_metric("train/step", hidden=True)
        r.define_metric("train/*", step_metric="train/step")
        r.define_metric("gradflow/*", step_metric="train/step")
        r.define_metric("epoch", hidden=True)
        r.define_metric("epoch/*", step_metric="epoch")
        r.define_metric("gradflow_by_layer/*", step_metric="epoch")
        d = run.description
        r.summary.update(_scalars({"arch": d.get("arch"), "depth": d.get("depth"),
                                   "params": d.get("params"), "flops": d.get("flops")}))
        self.sync_dir = Path(r.sync_dir)
        if self.mode == "offline":
            log.info("W&B: offline run %s (id %s; %s); upload later with: wandb sync %s",
                     run.name, r.id, why, self.sync_dir)
        else:
            log.info("W&B: run %s at %s", run.name, r.url)

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        if self.run is None:
            return
        row: dict[str, Any] = {f"train/{k}": v for k, v in metrics.items() if v is not None}
        row["train/step"] = step
        self._log(row, step)

    def log_gradflow(self, epoch: int, record: Any) -> None:
        if self._info is None or self.mode == "disabled":
            return
        self._remember(record.step, epoch, record.grad_norm)
        self._last = (epoch, record)
        if self.run is None:
            return
        row: dict[str, Any] = {"train/step": record.step}
        for stat in self.cfg.series:
            keys = self._block_keys if stat in BLOCK_SERIES else self._keys
            row.update((k, v) for k, v in zip(keys[stat], getattr(record, stat)) if v is not None)
        ratio = _number(first_last_ratio(self._info.layers, record.grad_norm))
        if ratio is not None:
            row["gradflow/ratio_first_last"] = ratio
        if (lg := log10(ratio)) is not None:
            row["gradflow/log10_ratio_first_last"] = lg
        self._log(row, record.step)

    def log_epoch(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        if self.run is None:
            return
        row: dict[str, Any] = {f"epoch/{k}": v for k, v in metrics.items() if v is not None}
        row["epoch"] = epoch
        if self._last is not None:
            row["gradflow_by_layer/table"] = self._table()
            row["gradflow_by_layer/chart"] = self._chart(epoch)
        every = self.cfg.heatmap_every
        if every and epoch % every == 0 and self._records:
            row["gradflow_by_layer/heatmap"] = self._heatmap()
        self._log(row, step)

    def finish(self, summary: dict[str, Any]) -> None:
        run, self.run = self.run, None
        if run is None:
            return
        ok = summary.get("status") in ("completed", "diverged")  # a diverged run is a result
        try:
            if self._records and self._heatmap_records != len(self._records):
                run.log({"gradflow_by_layer/heatmap": self._heatmap(),
                         "epoch": self._records[-1][1]}, step=self._step)
            run.summary.update(_scalars(summary))
        finally:
            run.finish(exit_code=0 if ok else 1)

    def abort(self) -> None:
        """Close the W&B run after a failure (SafeSink calls this once)."""
        run, self.run = self.run, None
        if run is not None:
            run.finish(exit_code=1)

    # -- helpers ---------------------------------------------------------------------------

    def _log(self, row: dict[str, Any], step: int) -> None:
        self._step = max(self._step, int(step))
        self.run.log(row, step=self._step)

    def _run_id(self, run: RunInfo) -> str:
        """The id in run_dir/wandb_id.txt when resuming; a new one (written there) otherwise."""
        path = Path(run.run_dir) / rundir.WANDB_ID
        if run.resumed_from_step is not None and path.exists():
            run_id = path.read_text().strip()
            if run_id and all(ch.isalnum() or ch in "-_" for ch in run_id):
                return run_id
        run_id = new_run_id()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, run_id + "\n")
        return run_id

    def _remember(self, step: int, epoch: int, grad_norm: list[float]) -> None:
        self._records.append((int(step), int(epoch), np.asarray(grad_norm, dtype=np.float64)))
        self._epoch_last[int(epoch)] = len(self._records) - 1

    def _load_history(self, run: RunInfo) -> None:
        """Gradient norms recorded before a resume, from the run directory's gradflow.csv."""
        path = Path(run.run_dir) / rundir.GRADFLOW
        if not path.exists():
            return
        position = {layer.name: i for i, layer in enumerate(run.layers)}
        steps: dict[int, tuple[int, np.ndarray]] = {}
        try:
            with open(path, newline="") as f:
                for row in csv.DictReader(f):
                    step, i = int(row["step"]), position.get(row["layer"])
                    if i is None or step >= run.resumed_from_step:
                        continue
                    if step not in steps:
                        steps[step] = (int(row["epoch"]), np.full(len(run.layers), np.nan))
                    steps[step][1][i] = float(row["grad_norm"]) if row["grad_norm"] else np.nan
        except (OSError, KeyError, ValueError) as err:  # heatmap starts at the resume then
            log.debug("W&B: could not read %s: %s", path, err)
            return
        for step in sorted(steps):
            epoch, grads = steps[step]
            self._remember(step, epoch, grads)

    def _table(self) -> Any:
        """One row per layer from the latest record (the epoch's last one)."""
        import wandb

        epoch, rec = self._last
        act, back = rec.act_std, rec.back_norm
        rows = []
        for i, layer in enumerate(self._info.layers):
            b = self._layer_block[i]
            rows.append([
                layer.index, layer.name, layer.stage, bool(layer.shortcut),
                _number(rec.grad_norm[i]), _number(rec.weight_norm[i]), _number(rec.ratio[i]),
                _number(act[b]) if b is not None and b < len(act) else None,
                _number(back[b]) if b is not None and b < len(back) else None,
                int(rec.step), int(epoch),
            ])
        return wandb.Table(columns=TABLE_COLUMNS, data=rows)

    def _chart(self, epoch: int) -> Any:
        """log10 gradient norm vs layer index (main path): the first record and each
        epoch's last, at most chart_curves lines, evenly thinned, first and last kept."""
        import wandb

        picks = sorted({0, *(i for e, i in self._epoch_last.items() if e <= epoch)})
        n = self.cfg.chart_curves
        if len(picks) > n:
            picks = [picks[round(k * (len(picks) - 1) / max(n - 1, 1))] for k in range(n)]
            picks = sorted(set(picks))
        main = [(i, layer.index) for i, layer in enumerate(self._info.layers) if not layer.shortcut]
        xs, ys, keys = [], [], []
        for p in picks:
            step, rec_epoch, grads = self._records[p]
            points = [(x, log10(grads[i])) for i, x in main]
            points = [(x, y) for x, y in points if y is not None]
            xs.append([x for x, _ in points])
            ys.append([y for _, y in points])
            keys.append(f"step {step} ({'init' if step == 0 else f'epoch {rec_epoch}'})")
        return wandb.plot.line_series(xs=xs, ys=ys, keys=keys, xname="layer index",
                                      title="log10 gradient norm by layer index",
                                      split_table=True)

    def _heatmap(self) -> Any:
        import wandb

        self._heatmap_records = len(self._records)
        steps = [s for s, _, _ in self._records]
        grads = np.stack([g for _, _, g in self._records])
        epoch = self._records[-1][1]
        title = f"{self._info.name}: gradient norm per layer (to epoch {epoch})"
        pixels = heatmap_pixels(self._info.layers, steps, grads, title=title)
        return wandb.Image(pixels, caption="rows: layers in depth order, input side at the "
                                           "bottom; colour: log10 gradient norm; blank: zero "
                                           "or not finite")


def heatmap_pixels(layers: list[Layer], steps: list[int], grads: np.ndarray, *,
                   title: str = "") -> np.ndarray:
    """RGB image of log10 gradient norm, layers (rows, depth order, input side at the
    bottom, named on the y axis) x recorded steps: the report's heatmap
    (`depthlab.plots.heatmap_figure`), at a size that depends only on the number of layers.

    grads: records x layers. At most HEATMAP_COLUMNS records are drawn (evenly
    thinned), so the cost per image is bounded whatever the run's length.
    """
    from depthlab.plots import gradflow_heatmap_pixels  # matplotlib only when drawing

    grads = np.asarray(grads, dtype=np.float64)
    steps_arr = np.asarray(steps, dtype=np.float64)
    if len(steps_arr) > HEATMAP_COLUMNS:
        keep = np.unique(np.linspace(0, len(steps_arr) - 1, HEATMAP_COLUMNS).round().astype(int))
        grads, steps_arr = grads[keep], steps_arr[keep]
    n_layers = grads.shape[1]
    height = min(12.0, max(3.5, 0.14 * n_layers + 1.5))
    return gradflow_heatmap_pixels(steps_arr, grads.T, title=title,
                                   row_labels=[f"L{layer.index:03d} {layer.name}"
                                               for layer in layers],
                                   max_row_labels=HEATMAP_TICKS, figsize=(9, height), dpi=100)
