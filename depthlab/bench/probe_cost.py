"""What gradient flow costs: GradFlowProbe timed directly inside depthlab's step, against wandb.watch's overhead."""

from __future__ import annotations

import gc
import os
import shutil
import statistics
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from depthlab.bench.nets import ModelSpec, compose, fresh_model, synthetic_batches, train_overrides
from depthlab.bench.reference import hand_optimizer, hand_step
from depthlab.bench.rows import Row, make_row
from depthlab.bench.timing import interleaved, say


@contextmanager
def offline_wandb(root: Path) -> Iterator[Any]:
    """A W&B run in offline mode whose every file (settings, cache, run) stays under root."""
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(root),
           "WANDB_CONFIG_DIR": str(root / "config"), "WANDB_CACHE_DIR": str(root / "cache"),
           "WANDB_DATA_DIR": str(root / "data"), "WANDB_ARTIFACT_DIR": str(root / "artifacts")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        import wandb

        run = wandb.init(project="depthlab-benchmark", mode="offline", dir=str(root),
                         settings=wandb.Settings(console="off", silent=True))
        try:
            yield wandb
        finally:
            run.finish()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def timed_probe_class():
    """GradFlowProbe whose block hooks (the forward hooks: output std; the tensor hooks in
    backward: ||dL/dh_b||) and record() add up the seconds they take (on the CPU every op
    is synchronous, so wall time inside a hook is its cost)."""
    from depthlab.gradflow import GradFlowProbe

    class TimedProbe(GradFlowProbe):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.hook_seconds = 0.0
            self.record_seconds = 0.0
            self.label = nullcontext  # record_function under --profile only: it costs µs per call
            super().__init__(*args, **kwargs)

        def _hook(self, i: int):
            inner = super()._hook(i)

            def hook(module, inputs, output):
                start = time.perf_counter()
                with self.label("gradflow.hooks"):
                    inner(module, inputs, output)
                self.hook_seconds += time.perf_counter() - start
            return hook

        def _grad_hook(self, i: int):
            # the backward signal ||dL/dh_b||: a tensor hook that runs inside backward()
            inner = super()._grad_hook(i)

            def hook(grad):
                start = time.perf_counter()
                with self.label("gradflow.hooks"):
                    inner(grad)
                self.hook_seconds += time.perf_counter() - start
            return hook

        def record(self, step: int, loss_scale: float = 1.0):
            start = time.perf_counter()
            with self.label("gradflow.record"):
                got = super().record(step, loss_scale=loss_scale)
            self.record_seconds += time.perf_counter() - start
            return got

    return TimedProbe


def gradflow_rows(specs: tuple[ModelSpec, ...], steps: int, reps: int,
                  profile_dir: Path | None = None) -> list[Row]:
    """Per net: the probe's cost per step (inside depthlab's own train_step) against
    wandb.watch's overhead, and against the step time of the unprobed hand loop."""
    from depthlab.engine.precision import make_precision
    from depthlab.engine.step import train_step
    from depthlab.models import describe
    from depthlab.tracking import RunInfo
    from depthlab.tracking.local import LocalSink

    TimedProbe = timed_probe_class()
    precision = make_precision("fp32", torch.device("cpu"))
    rows: list[Row] = []
    root = Path(tempfile.mkdtemp(prefix="depthlab-bench-wandb-"))
    try:
        with offline_wandb(root / "wandb") as wandb:
            for spec in specs:
                cfg = compose(train_overrides(spec))
                batches, data = synthetic_batches(cfg)
                say(f"gradflow: {spec.label}, batch {spec.batch}, {steps} steps x 3 variants x "
                    f"{reps} reps (W&B offline)")
                models = {v: fresh_model(cfg, data) for v in ("base", "probe", "watch")}
                optimizers = {v: hand_optimizer(m, cfg["optim"]) for v, m in models.items()}
                desc = describe(models["probe"], flops=False)
                probe = TimedProbe(models["probe"], desc["layers"], desc["blocks"], activations=True)
                sink = LocalSink(root / f"run-{spec.key}")
                sink.start(RunInfo(name="bench", group="benchmark", run_dir=sink.run_dir,
                                   config={}, description={}, layers=desc["layers"],
                                   blocks=desc["blocks"]))
                wandb.watch(models["watch"], log="gradients", log_freq=1)
                counter = {"step": 0, "write": 0.0}

                def loop(variant: str, n: int) -> float:
                    """Seconds per step of n steps + wandb.log(loss) per step: depthlab's
                    train_step with the probe recording (and gradflow.csv written) for
                    "probe", the hand loop (wandb.watch's hooks on it for "watch") else."""
                    model, optimizer = models[variant], optimizers[variant]
                    start = time.perf_counter()
                    for i in range(n):
                        x, y = batches[i % len(batches)]
                        if variant == "probe":
                            loss, _, record = train_step(model, optimizer, x, y, precision, probe,
                                                         counter["step"])
                            t0 = time.perf_counter()
                            with probe.label("gradflow.write"):
                                sink.log_gradflow(1, record)
                            counter["write"] += time.perf_counter() - t0
                        else:
                            loss = hand_step(model, optimizer, x, y)
                        wandb.log({"loss": loss.item()})  # W&B's own step: one per commit
                        counter["step"] += 1
                    return (time.perf_counter() - start) / n

                for variant in models:  # warm-up: first steps allocate grads, momentum, oneDNN
                    loop(variant, 1)
                direct: list[dict[str, float]] = []

                def probe_side() -> float:
                    probe.hook_seconds = probe.record_seconds = counter["write"] = 0.0
                    step = loop("probe", steps)
                    direct.append({"hooks": probe.hook_seconds / steps,
                                   "record": probe.record_seconds / steps,
                                   "write": counter["write"] / steps})
                    return step

                got = interleaved(reps, {"base": lambda: loop("base", steps),
                                         "probe": probe_side,
                                         "watch": lambda: loop("watch", steps)})
                if profile_dir is not None:  # after the timed reps, labels on
                    probe.label = torch.profiler.record_function
                    write_profile(profile_dir, spec, lambda: loop("probe", steps))
                wandb.unwatch(models["watch"])
                probe.close()
                sink.finish({})
                rows += _rows(spec, steps, got, direct, desc)
                models.clear()  # free this model's memory before the next
                optimizers.clear()
                gc.collect()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows


def _rows(spec: ModelSpec, steps: int, got: dict[str, list[float]],
          direct: list[dict[str, float]], desc: dict[str, Any]) -> list[Row]:
    ms = 1000.0
    probe_ms = [ms * sum(d.values()) for d in direct]
    base_ms = [ms * t for t in got["base"]]
    watch_ms = [ms * (w - b) for w, b in zip(got["watch"], got["base"])]
    probe_diff_ms = [ms * (p - b) for p, b in zip(got["probe"], got["base"])]
    parts = {k: statistics.median(ms * d[k] for d in direct) for k in direct[0]}
    label = f"{spec.label}, batch {spec.batch}"
    common = {"batch": spec.batch, "timed_steps": steps,
              "probe_parts_ms": parts,
              "probe_by_step_difference_ms": probe_diff_ms,
              "step_ms": {"base": base_ms,
                          "probe": [ms * t for t in got["probe"]],
                          "watch": [ms * t for t in got["watch"]]},
              "layers": len(desc["layers"]), "blocks": len(desc["blocks"])}
    rows = [
        make_row(f"gradflow/vs-watch/{spec.key}", f"gradient flow vs wandb.watch: {label}",
                 depthlab=probe_ms, baseline=watch_ms,
                 ratios=[w / p for w, p in zip(watch_ms, probe_ms)], unit="ms/step",
                 target=(">=", 5.0), baseline_is="wandb.watch(log='gradients', log_freq=1) overhead",
                 detail=common),
        make_row(f"gradflow/share/{spec.key}", f"gradient flow share of a step: {label}",
                 depthlab=probe_ms, baseline=base_ms,
                 ratios=[p / b for p, b in zip(probe_ms, base_ms)], unit="ms/step",
                 target=("<", 0.02), ratio_unit="%", baseline_is="training step",
                 detail=common),
    ]
    say(f"  probe {statistics.median(probe_ms):.2f} ms ({100 * rows[1].ratio:.2f}% of "
        f"a step), wandb.watch {statistics.median(watch_ms):.1f} ms: {rows[0].ratio:.1f}x")
    return rows


def write_profile(out: Path, spec: ModelSpec, steps: Callable[[], float]) -> None:
    """torch.profiler over training steps with the probe: which ops the probe's cost is made of
    (its parts are labelled gradflow.hooks / gradflow.record / gradflow.write)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        steps()
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"profile-{spec.key}.txt"
    path.write_text(f"# torch.profiler: training steps of {spec.label}, batch {spec.batch}, "
                    f"with GradFlowProbe recording every step\n"
                    f"# gradflow.* rows: the probe's parts, with their child ops\n{table}\n")
    say(f"  profile: {path}")
