"""Fig. 6 on one GPU for the GPU check: its mode and budget, the step times and length that fit, its overrides, the report section beside the paper (completed runs only)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PAPER_TEST_ERROR = {20: 8.75, 56: 6.97}  # He et al. 2015, Table 6: ResNet-20 / ResNet-56, %
FULL_ITERATIONS = 64000  # the paper's schedule (conf/experiment/resnet_cifar_paper.yaml)


@dataclass
class Mode:
    """What differs between the GPU run and the CPU mode CI runs."""

    cpu: bool
    budget_s: float  # the whole command's wall time: the one deadline every phase is clipped to
    reserve_s: float  # kept after training for Fig. 6's stop, the report, the summary and the pack
    full_iterations: int  # the recipe's length (CPU mode: a few steps)
    startup_s: float  # Fig. 6 before its first step: compare's plan, four imports, captures
    fig6: list[str] = field(default_factory=list)  # overrides beyond the recipe


def mode(cpu: bool, budget: float | None) -> Mode:
    if cpu:  # the same data steps as on a GPU, on check.tiny_archive's images
        return Mode(cpu=True, budget_s=budget or 240, reserve_s=30, full_iterations=6, startup_s=10,
                    fig6=["trainer.device=cpu", "trainer.precision=fp32", "trainer.channels_last=false",
                          "trainer.batch_size=16", "trainer.eval_batch_size=50", "trainer.threads=1",
                          "trainer.log_every=2", "trainer.eval_every=1", "gradflow.every=2",
                          "hydra.launcher.n_jobs=2"])
    return Mode(cpu=False, budget_s=budget or 520, reserve_s=45, full_iterations=FULL_ITERATIONS,
                startup_s=60, fig6=["trainer.log_every=100", "gradflow.every=100", "trainer.threads=4",
                                    "hydra.launcher.n_jobs=4"])


GUESS_MS = {20: 15.0, 56: 40.0}  # no benchmark at all: a pessimistic guess (ms a step)


def step_times(nets: dict[str, Any], graphs: bool) -> dict[str, float]:
    """ms a step of residual-20 and -56 from gpu.json's nets, on the path Fig. 6 takes. A depth
    the benchmark did not time (cut, failed, or CPU mode's residual-8 only) is scaled by depth
    from the deepest cifar net it did time; none at all: GUESS_MS."""
    path = "graphs" if graphs else "eager"
    timed = {int(k.split("-")[1]): v["step_ms"][path] for k, v in nets.items()
             if k.startswith("residual-") and k.endswith("-cifar") and v.get("step_ms", {}).get(path)}
    out = {}
    for depth in (20, 56):
        if depth in timed:
            out[str(depth)] = timed[depth]
        elif timed:
            d = max(timed)
            out[str(depth)] = timed[d] * depth / d
        else:
            out[str(depth)] = GUESS_MS[depth]
    return out


def plan_iterations(step_ms: dict[str, float], seconds: float, full: int,
                    together_ms: float | None = None) -> tuple[int, str]:
    """The iterations that fit `seconds` when plain and residual nets of depth 20 and 56 train
    at once on one GPU. An iteration of the four costs what the benchmark measured with the
    four at once (`together_ms`, the slowest net's step), else the sum of their step times
    alone (a conservative bound: the GPU runs one process's kernels at a time, and processes
    bound by launches on the CPU overlap); plus 15% for evaluation, checkpoints, logging."""
    if together_ms:
        base, how = together_ms, "measured with the four at once"
    else:
        base, how = 2 * (step_ms["20"] + step_ms["56"]), "the sum of the four step times alone"
    per_iteration = 1.15 * base / 1000
    fits = int(max(0.0, seconds) / per_iteration)
    if fits >= full:
        return full, (f"the full {full:,} iterations fit: {per_iteration * 1000:.1f} ms per "
                      f"iteration of the four nets ({how}, + 15%), {full * per_iteration:.0f} s "
                      f"of {seconds:.0f} s")
    n = max(fits // 100 * 100, min(full, 100))
    return n, (f"{n:,} of the paper's {full:,} iterations ({100 * n / full:.0f}%): "
               f"{per_iteration * 1000:.1f} ms per iteration of the four nets ({how}, + 15%) "
               f"leaves room for {fits:,} in the {seconds:.0f} s left; the lr drops at 50% and "
               f"75% of the run as in the paper (fractions)")


def fig6_overrides(m: Mode, iterations: int, graphs: bool, runs_dir: Path,
                   data_root: Path | None, cache_dir: Path | None = None) -> list[str]:
    o = ["experiment=resnet_cifar_paper", "trainer=gpu", "depth=20,56", "logger=none",
         f"trainer.iterations={iterations}", f"trainer.cuda_graphs={str(graphs).lower()}",
         f"paths.runs_dir={runs_dir}", "sweep.name=gpu-fig6", "hydra/launcher=joblib", *m.fig6]
    if data_root is not None:  # the copy the check unpacked and decoded: never a download
        o += [f"data.root={data_root}", "data.download=false"]
    if cache_dir is not None:  # where the check decoded it, so the four runs load that cache
        o.append(f"data.cache_dir={cache_dir}")
    return o


def read_runs(sweep: Path) -> dict[str, dict[str, Any]]:
    runs = {}
    for path in sorted(sweep.glob("*/summary.json")):
        try:
            runs[path.parent.name] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return runs


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def cut(s: dict[str, Any]) -> str | None:
    """Why a run's numbers are not final (None: it completed): missing, or cut where it stopped."""
    if not s:
        return "is missing"
    if s.get("status") != "completed":
        total = f" of {s['total_steps']:,}" if s.get("total_steps") else ""
        return f"was cut at step {s.get('steps_completed', 0):,}{total} ({s.get('status', 'no status')})"
    if s.get("final_train_error") is None:
        return "completed without a final training error"
    return None


def verdict(r20: dict[str, Any], r56: dict[str, Any]) -> str:
    """Residual-56 against residual-20, from completed runs only: a cut run's last errors are
    those of a shorter schedule (no second lr drop, say), not the recipe's."""
    why = [f"residual-{d} {w}" for d, s in ((20, r20), (56, r56)) if (w := cut(s))]
    if why:
        return f"no verdict: {'; '.join(why)} (only completed runs are compared)"
    d_train = 100 * (r20["final_train_error"] - r56["final_train_error"])
    d_test = 100 * ((r20.get("final_test_error") or 0) - (r56.get("final_test_error") or 0))
    return (f"residual-56 ends {'lower' if d_train > 0 else 'higher'} than residual-20 in "
            f"training error by {abs(d_train):.2f} points ({'lower' if d_test > 0 else 'higher'}"
            f" in test error by {abs(d_test):.2f}); one seed, so there is no seed spread to "
            f"judge that difference against (seed=0,1 would give one)")


def fig6_section(runs: dict[str, dict[str, Any]], facts: dict[str, Any]) -> str:
    """The GPU facts and the paper's numbers, for the top of report.md and summary.md."""
    from depthlab.analysis import markdown_table

    rows = []
    for arch in ("plain", "residual"):
        for depth in (20, 56):
            s = runs.get(f"{arch}-{depth}-s0", {})
            paper = f"{PAPER_TEST_ERROR[depth]:.2f}" if arch == "residual" else "(Fig. 6 curve only)"
            rows.append([f"{arch}-{depth}", s.get("status", "missing"), str(s.get("steps_completed", "-")),
                         pct(s.get("final_train_error")), pct(s.get("final_test_error")), paper,
                         f"{s['wall_seconds'] / 60:.1f}" if s.get("wall_seconds") else "-"])
    # runs that started but did not complete (the deadline's SIGTERM, a failure)
    cuts = [f"{name[:-3]} {cut(s)}" for name, s in sorted(runs.items()) if cut(s)]
    g = facts.get("env", {})
    device = (f"{g.get('gpu')} (driver {g.get('driver') or '?'}), torch {g.get('torch')}, "
              f"CUDA {g.get('cuda')}, cuDNN {g.get('cudnn')}" if g.get("gpu")
              else f"no GPU (CPU mode: {g.get('cpu')}, torch {g.get('torch')}): tiny runs on random "
                   f"images in CIFAR-10's layout, the numbers mean nothing")
    lines = [
        "## On one GPU, beside the paper", "",
        f"- **Device:** {device}",
        f"- **Length:** {facts.get('length', 'not planned (the check stopped before Fig. 6)')}",
        f"- **Step:** trainer=gpu (bf16 autocast, channels_last), trainer.cuda_graphs="
        f"{str(facts.get('graphs', False)).lower()} ({facts.get('graphs_why', '-')}); gradient flow "
        f"every {facts.get('every', '-')} steps",
        f"- **Wall time:** {facts.get('train_s', 0):.0f} s for the four runs at once "
        f"(the whole check: {facts.get('total_s', 0):.0f} s)",
        *([f"- **Cut:** {'; '.join(cuts)}: their errors are not the recipe's"] if cuts else []),
        f"- **Residual-56 vs residual-20:** "
        f"{verdict(runs.get('residual-20-s0', {}), runs.get('residual-56-s0', {}))}", "",
        markdown_table(["net", "status", "steps", "train error %", "test error %",
                        "paper test error %", "run wall min"], rows), "",
        "Paper: He et al. 2015, Table 6 (ResNet-20 8.75%, ResNet-56 6.97% test error, 64k "
        "iterations, fp32, per-pixel mean subtraction, 45k/5k split for tuning only).", "",
    ]
    return "\n".join(lines)


def insert_section(report: Path, section: str) -> None:
    """Put `section` right under report.md's title line."""
    text = report.read_text()
    title, _, rest = text.partition("\n")
    report.write_text(f"{title}\n\n{section}{rest}")
