"""Hand-made run directories with known numbers, in the format of depthlab.rundir.

No training: each file is written as a real run would leave it, with the
final numbers the test chooses, so the analysis can be checked against them.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import yaml

EPOCHS = 4
STEPS_PER_EPOCH = 5
GRADFLOW_EVERY = 5


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def make_run(root: Path, arch: str, depth: int, seed: int, *, train_error: float,
             test_error: float, log10_ratio_init: float, log10_ratio_end: float,
             status: str = "completed", norm: str = "batch", error: str | None = None,
             epochs: int = EPOCHS, name: str | None = None,
             summary: dict | None = None) -> Path:
    """Write runs/<name>/ with final errors and first/last gradient ratios as given.

    Errors fall linearly from 0.9 to the final values over the epochs; the
    gradient norm of main-path layer i (1..depth) is 10^(r * (depth - i) / (depth - 1))
    times the last layer's (0.5), so first / last = 10^r exactly; a residual
    net also gets two projection-shortcut layers (shortcut=1) that the
    analysis must leave out. `summary` overrides or adds summary.json keys (e.g. the
    data set, train_subset, epochs_completed of a published run).
    """
    name = name or f"{arch}-{depth}-s{seed}"
    run = Path(root) / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({
        "arch": {"name": arch, "layout": "cifar", "norm": norm}, "depth": depth, "seed": seed,
        "data": {"name": "synthetic", "train_subset": None}, "trainer": {"epochs": epochs},
    }))
    # layers: main path 1..depth, plus projection shortcuts for residual nets
    layers = []
    for i in range(1, depth + 1):
        stage = "stem" if i == 1 else ("head" if i == depth else f"stage{1 + 3 * (i - 2) // (depth - 2)}")
        kind = "linear" if i == depth else "conv"
        layers.append([f"layer{i}" if 1 < i < depth else ("conv1" if i == 1 else "fc"), kind, stage, 0])
    if arch == "residual":
        layers.insert(depth // 3, ["layer2.0.downsample.0", "conv", "stage2", 1])
        layers.insert(2 * depth // 3, ["layer3.0.downsample.0", "conv", "stage3", 1])
    _write_csv(run / "layers.csv", ["index", "name", "kind", "stage", "shortcut", "params"],
               [[i + 1, n, k, s, sc, 100 * (i + 1)] for i, (n, k, s, sc) in enumerate(layers)])
    blocks = [f"block{b}" for b in range(max(1, (depth - 2) // 2))]
    _write_csv(run / "blocks.csv", ["block_index", "block"], [[i, b] for i, b in enumerate(blocks)])

    done = epochs if status == "completed" else max(1, epochs // 2)
    total = done * STEPS_PER_EPOCH
    frac = [(e / done) for e in range(1, done + 1)]
    train = [0.9 + (train_error - 0.9) * f for f in frac]
    test = [0.9 + (test_error - 0.9) * f for f in frac]
    _write_csv(run / "metrics_epochs.csv",
               ["epoch", "step", "train_loss", "train_error", "test_loss", "test_error", "lr",
                "images_per_sec", "epoch_seconds", "wall_seconds"],
               [[e, e * STEPS_PER_EPOCH, 2.3 * tr, tr, 2.3 * te, te, 0.1, 1000.0, 1.5, 1.5 * e]
                for e, tr, te in zip(range(1, done + 1), train, test)])
    _write_csv(run / "metrics_steps.csv", ["step", "epoch", "loss", "error", "lr", "images_per_sec"],
               [[s, 1 + (s - 1) // STEPS_PER_EPOCH, 2.0, 0.5, 0.1, 1000.0]
                for s in range(1, total + 1)])

    steps = sorted(set(range(0, total, GRADFLOW_EVERY)) | {total - 1})
    rows = []
    for step in steps:
        t = step / max(total - 1, 1)
        r = log10_ratio_init + (log10_ratio_end - log10_ratio_init) * t
        main = 0
        for index, (lname, _, stage, sc) in enumerate(layers, start=1):
            if sc:
                g = 0.123
            else:
                main += 1
                g = 0.5 * 10 ** (r * (depth - main) / (depth - 1))
            rows.append([step, 1 + step // STEPS_PER_EPOCH, index, lname, stage, sc, g, 1.0, g])
    _write_csv(run / "gradflow.csv", ["step", "epoch", "layer_index", "layer", "stage", "shortcut",
                                      "grad_norm", "weight_norm", "ratio"], rows)
    _write_csv(run / "activations.csv", ["step", "epoch", "block_index", "block", "act_std"],
               [[s, 1 + s // STEPS_PER_EPOCH, i, b, 1.0] for s in steps for i, b in enumerate(blocks)])
    (run / "checkpoint.pt").write_bytes(b"not a real checkpoint")

    extra = summary or {}
    summary = {
        "name": name, "group": root.name, "arch": arch, "depth": depth, "layout": "cifar",
        "norm": norm, "shortcut": "A", "preact": False, "zero_init_residual": False,
        "seed": seed, "data": "synthetic", "train_subset": None,
        "params": 1000 * depth + (7 if arch == "residual" else 0), "flops": 2_000_000 * depth,
        "epochs": epochs, "total_steps": epochs * STEPS_PER_EPOCH, "device": "cpu",
        "machine": "testbox (x86_64, Linux, torch 2.x)", "status": status,
        "diverged": status == "diverged",
        "final_train_error": None if status == "diverged" else train[-1],
        "final_test_error": None if status == "diverged" else test[-1],
        "best_test_error": min(test), "epochs_completed": done, "steps_completed": total,
        "grad_ratio_first_last_init": 10 ** log10_ratio_init,
        "grad_ratio_first_last": None if status == "diverged" else 10 ** log10_ratio_end,
        "log10_grad_ratio_init": log10_ratio_init,
        "log10_grad_ratio": None if status == "diverged" else log10_ratio_end,
        "wall_seconds": 1.5 * done,
    }
    if error:
        summary["error"] = error
    summary.update(extra)
    (run / "summary.json").write_text(json.dumps(summary, indent=2))
    return run


# The main fixture: plain degrades with depth, residual does not; 2 seeds each.
#                 arch, depth, seed: (train, test, log10 init, log10 end)
SWEEP = {
    ("plain", 20, 0): (0.096, 0.120, -0.8, -0.4),
    ("plain", 20, 1): (0.100, 0.124, -0.9, -0.5),
    ("plain", 56, 0): (0.140, 0.160, -3.2, -1.5),
    ("plain", 56, 1): (0.144, 0.166, -3.0, -1.4),
    ("residual", 20, 0): (0.078, 0.100, -0.1, 0.0),
    ("residual", 20, 1): (0.080, 0.104, -0.2, 0.1),
    ("residual", 56, 0): (0.060, 0.090, -0.2, 0.0),
    ("residual", 56, 1): (0.062, 0.086, -0.1, -0.1),
}


def make_sweep(root: Path, runs: dict | None = None, **kw) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for (arch, depth, seed), (tr, te, ri, re) in (runs or SWEEP).items():
        make_run(root, arch, depth, seed, train_error=tr, test_error=te, log10_ratio_init=ri,
                 log10_ratio_end=re, **kw)
    return root

