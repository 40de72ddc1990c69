"""The W&B sink against real W&B (offline), read back with W&B's own reader.

The sinks are driven the way depthlab.train drives them (local sink first),
with a real model's layers and hand-made gradient-flow records, so that the
W&B history can be compared with the run directory's gradflow.csv.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from pathlib import Path

import numpy as np
import pytest
import wandb
import yaml
from wandb_reader import isolate_wandb, read_table, read_wandb_run, wandb_files

from depthlab.config import conf_dir
from depthlab.gradflow import GradFlowRecord
from depthlab.models import Layer, build_model, describe
from depthlab.rundir import first_last_ratio
from depthlab.tracking import RunInfo
from depthlab.tracking.local import LocalSink
from depthlab.tracking.safe import SafeSink
from depthlab.tracking.wandb_sink import (
    HEATMAP_COLUMNS,
    TABLE_COLUMNS,
    WandbConfig,
    WandbSink,
    block_keys,
    heatmap_pixels,
    layer_keys,
)

CONF = conf_dir() / "logger"
DESC = describe(build_model("residual", 20, layout="cifar"))
STEPS_PER_EPOCH, EVERY, LOG_EVERY = 30, 10, 10
FAKE_KEY = "depthlabfakekey" + "0" * 25  # 40 characters, the shape of a W&B API key


@pytest.fixture
def wb(tmp_path, monkeypatch):
    isolate_wandb(monkeypatch, tmp_path)
    yield tmp_path
    wandb.teardown()


def make_info(run_dir: Path, name: str = "residual-20-s0", group: str = "test-sweep",
              resumed_from_step: int | None = None, resumed_epoch: int = -1) -> RunInfo:
    config = {"arch": {"name": "residual", "layout": "cifar", "shortcut": "auto"}, "depth": 20,
              "seed": 0, "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
              "gradflow": {"every": EVERY, "activations": True}, "run": {"name": name},
              "tags_like": ["a", "b"]}
    return RunInfo(
        name=name, group=group, run_dir=run_dir, config=config,
        description={k: v for k, v in DESC.items() if k not in ("layers", "blocks")},
        layers=DESC["layers"], blocks=DESC["blocks"], resumed_from_step=resumed_from_step,
        extra={"resumed_epoch": resumed_epoch},
    )


def make_record(step: int) -> GradFlowRecord:
    n, b = len(DESC["layers"]), len(DESC["blocks"])
    grad = [0.01 * 2 ** (i / 3) * (1 + step / 50) for i in range(n)]  # vanishing towards the input
    weight = [1 + i / 10 for i in range(n)]
    act = [1 + j / 10 + step / 1000 for j in range(b)]
    back = [0.5 * 1.1 ** -j / (1 + step / 100) for j in range(b)]  # ||dL/dh_b|| per block
    return GradFlowRecord(step, grad, weight, act, back)


def drive(sinks, info: RunInfo, epochs: int = 2, start_step: int = 0, stop_after: int | None = None,
          status: str = "completed"):
    """The calls depthlab.train makes, in its order, for a run of `epochs` epochs
    from `start_step` (stopping after epoch `stop_after`); returns the records logged."""
    total = epochs * STEPS_PER_EPOCH
    for sink in sinks:
        sink.start(info)
    records, step = [], start_step
    for epoch in range(start_step // STEPS_PER_EPOCH + 1, (stop_after or epochs) + 1):
        for _ in range(STEPS_PER_EPOCH):
            if step % EVERY == 0 or step == total - 1:
                rec = make_record(step)
                records.append((epoch, rec))
                for sink in sinks:
                    sink.log_gradflow(epoch, rec)
            step += 1
            if step % LOG_EVERY == 0:
                for sink in sinks:
                    sink.log_step(step, {"epoch": epoch, "loss": 2.0 / step,
                                         "error": 0.9 - step / 100, "lr": 0.1,
                                         "images_per_sec": 1000.0 + step})
        metrics = {"train_loss": 1.0 / epoch, "train_error": 0.5 / epoch, "test_loss": 1.1 / epoch,
                   "test_error": 0.6 / epoch, "lr": 0.1, "images_per_sec": 1234.0,
                   "epoch_seconds": 1.5, "wall_seconds": 1.5 * epoch}
        for sink in sinks:
            sink.log_epoch(epoch, step, metrics)
    first = make_record(0).grad_norm
    last = records[-1][1].grad_norm
    init, end = first_last_ratio(DESC["layers"], first), first_last_ratio(DESC["layers"], last)
    summary = {"name": info.name, "group": info.group, "status": status, "diverged": False,
               "final_train_error": 0.5 / epochs, "final_test_error": 0.6 / epochs,
               "best_test_error": 0.6 / epochs, "grad_ratio_first_last_init": init,
               "grad_ratio_first_last": end, "log10_grad_ratio_init": math.log10(init),
               "log10_grad_ratio": math.log10(end), "params": DESC["params"],
               "flops": DESC["flops"], "shortcut": None, "images_per_sec": float("nan")}
    for sink in sinks:
        sink.finish(summary)
    return records, summary


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_one_run_reads_back_from_the_wandb_file(wb, caplog):
    run_dir = wb / "runs" / "test-sweep" / "residual-20-s0"
    cfg = {"mode": "offline", "project": "depthlab-test", "tags": ["unit"], "dir": str(wb / "wb")}
    info = make_info(run_dir)
    with caplog.at_level(logging.INFO, logger="depthlab"):
        records, summary = drive([LocalSink(run_dir), WandbSink(cfg)], info)
    [path] = wandb_files(wb / "wb")
    run = read_wandb_run(path)

    assert (run.name, run.group, run.job_type, run.project) == (
        "residual-20-s0", "test-sweep", "residual", "depthlab-test")
    assert run.tags == ["unit"]
    assert run.run_id == (run_dir / "wandb_id.txt").read_text().strip()
    assert run.config == info.config
    assert run.exit_code == 0
    assert "wandb sync" in caplog.text  # the one info line says how to upload
    assert run.step_metric("train/*") == "train/step"
    assert run.step_metric("gradflow/*") == "train/step"
    assert run.step_metric("epoch/*") == "epoch"

    # per-layer gradient norms: W&B history == the run directory's gradflow.csv
    rows = csv_rows(run_dir / "gradflow.csv")
    assert len(rows) == len(records) * len(DESC["layers"])
    for row in rows:
        key = f"gradflow/grad_norm/L{int(row['layer_index']):03d}_{row['layer']}"
        assert run.series(key, x="train/step")[int(row["step"])] == pytest.approx(
            float(row["grad_norm"]), rel=1e-12)
    first_key, last_key = layer_keys(DESC["layers"])[0], layer_keys(DESC["layers"])[-1]
    assert first_key == "gradflow/grad_norm/L001_conv1" and last_key == "gradflow/grad_norm/L020_fc"
    assert run.series(first_key, x="train/step") == {r.step: r.grad_norm[0] for _, r in records}
    assert run.series(last_key, x="train/step") == {r.step: r.grad_norm[-1] for _, r in records}
    for row in csv_rows(run_dir / "activations.csv"):
        key = block_keys(DESC["blocks"])[int(row["block_index"])]
        value = run.series(key, x="train/step")[int(row["step"])]
        assert value == pytest.approx(float(row["act_std"]))
        # the backward signal per block: gradflow/back_norm/B007_<block>, as activations.csv has it
        key = block_keys(DESC["blocks"], "back_norm")[int(row["block_index"])]
        assert key == f"gradflow/back_norm/B{int(row['block_index']):03d}_{row['block']}"
        value = run.series(key, x="train/step")[int(row["step"])]
        assert value == pytest.approx(float(row["back_norm"]), rel=1e-12)
    assert run.series("gradflow/back_norm/B008_layer3.2", x="train/step") == {
        r.step: pytest.approx(r.back_norm[8]) for _, r in records}
    assert "gradflow/weight_norm/L001_conv1" not in run.summary  # not in the default series
    ratios = run.series("gradflow/log10_ratio_first_last", x="train/step")
    assert ratios[0] == pytest.approx(math.log10(summary["grad_ratio_first_last_init"]))

    # step and epoch metrics on their own axes
    steps = csv_rows(run_dir / "metrics_steps.csv")
    assert run.series("train/loss", x="train/step") == {
        int(r["step"]): pytest.approx(float(r["loss"])) for r in steps}
    assert run.series("epoch/test_error", x="epoch") == {1: 0.6, 2: 0.3}
    assert run.series("epoch/train_error", x="epoch") == {1: 0.5, 2: 0.25}

    # summary: the run's final numbers
    for key in ("final_train_error", "final_test_error", "best_test_error", "grad_ratio_first_last",
                "grad_ratio_first_last_init", "log10_grad_ratio", "log10_grad_ratio_init",
                "status", "diverged", "params", "flops"):
        assert run.summary[key] == pytest.approx(summary[key]), key
    assert "images_per_sec" not in run.summary and "shortcut" not in run.summary  # nan, None

    # the per-layer table of the last epoch
    table = read_table(run, "gradflow_by_layer/table")
    assert table["columns"] == TABLE_COLUMNS
    col = {c: [row[i] for row in table["data"]] for i, c in enumerate(TABLE_COLUMNS)}
    last_epoch, last = records[-1]
    assert col["layer_index"] == [layer.index for layer in DESC["layers"]]
    assert col["layer"] == [layer.name for layer in DESC["layers"]]
    assert col["grad_norm"] == pytest.approx(last.grad_norm)
    assert col["weight_norm"] == pytest.approx(last.weight_norm)
    assert col["ratio"] == pytest.approx(last.ratio)
    assert col["act_std"][0] is None and col["act_std"][-1] is None  # stem conv, fc: no block
    assert col["act_std"][1] == pytest.approx(last.act_std[0])  # layer1.0.conv1 in block layer1.0
    assert col["back_norm"][0] is None and col["back_norm"][1] == pytest.approx(last.back_norm[0])
    assert set(col["step"]) == {last.step} and set(col["epoch"]) == {last_epoch}

    # the gradient-flow chart: a line per epoch (and the first record), log10 norm vs index
    assert any(rec["type"] == "config"
               and "_wandb.visualize.gradflow_by_layer/chart" in rec["config"]["update"]
               for rec in run.records)
    chart = read_table(run, "Custom Chart Tables/gradflow_by_layer/chart_table")
    lines: dict[str, dict[float, float]] = {}
    for row in chart["data"]:
        item = dict(zip(chart["columns"], row))
        lines.setdefault(item["lineKey"], {})[item["step"]] = item["lineVal"]
    epoch1_last = [r for e, r in records if e == 1][-1]
    assert list(lines) == ["step 0 (init)", f"step {epoch1_last.step} (epoch 1)",
                           f"step {last.step} (epoch 2)"]
    assert lines[f"step {last.step} (epoch 2)"] == pytest.approx(
        {layer.index: math.log10(g) for layer, g in zip(DESC["layers"], last.grad_norm)})

    # a heatmap per epoch
    images = list((run.files_dir / "media" / "images").rglob("*.png"))
    assert len(images) == 2
    assert run.summary["gradflow_by_layer/heatmap._type"] == "image-file"


def test_two_runs_in_one_process_are_two_wandb_runs(wb, monkeypatch, caplog):
    isolate_wandb(monkeypatch, wb, wandb_dir=False)  # dir: null and no WANDB_DIR: the run dirs
    names = ["plain-20-s0", "residual-20-s0"]
    run_dirs = [wb / "runs" / "sweep" / name for name in names]
    with caplog.at_level(logging.WARNING, logger="depthlab"):
        for name, run_dir in zip(names, run_dirs):
            sink = SafeSink(WandbSink({"mode": "offline"}), "W&B")  # as depthlab.launch makes it
            info = make_info(run_dir, name=name, group="sweep")
            drive([LocalSink(run_dir), sink], info, epochs=1)
            assert not sink.disabled
    assert not caplog.records
    runs = []
    for name, run_dir in zip(names, run_dirs):
        [path] = wandb_files(run_dir)
        assert path.is_relative_to(run_dir / "wandb")
        runs.append(read_wandb_run(path))
        assert runs[-1].name == name and runs[-1].group == "sweep" and runs[-1].exit_code == 0
        assert runs[-1].run_id == (run_dir / "wandb_id.txt").read_text().strip()
    assert runs[0].run_id != runs[1].run_id
    assert len(wandb_files(wb)) == 2


def test_a_resumed_run_continues_the_same_wandb_run(wb):
    run_dir = wb / "runs" / "residual-20-s0"
    cfg = {"mode": "offline", "dir": str(wb / "wb"), "heatmap_every": 0,
           "series": ["grad_norm", "weight_norm", "ratio"]}
    drive([LocalSink(run_dir), WandbSink(cfg)], make_info(run_dir), stop_after=1,
          status="interrupted")
    resumed = make_info(run_dir, resumed_from_step=STEPS_PER_EPOCH, resumed_epoch=1)
    drive([LocalSink(run_dir), WandbSink(cfg)], resumed, epochs=2, start_step=STEPS_PER_EPOCH)

    first, second = [read_wandb_run(p) for p in wandb_files(wb / "wb")]
    assert first.run_id == second.run_id == (run_dir / "wandb_id.txt").read_text().strip()
    assert first.exit_code == 1 and second.exit_code == 0  # interrupted, then completed
    key = layer_keys(DESC["layers"])[0]
    assert sorted(first.series(key, x="train/step")) == [0, 10, 20]
    assert sorted(second.series(key, x="train/step")) == [30, 40, 50, 59]
    assert min(row["_step"] for row in second.history) >= STEPS_PER_EPOCH  # W&B steps go on
    # the chart after the resume still starts from the first record (read from gradflow.csv)
    chart = read_table(second, "Custom Chart Tables/gradflow_by_layer/chart_table")
    # other series, and the heatmap only at the end (heatmap_every: 0)
    last = make_record(59)
    assert second.summary[layer_keys(DESC["layers"], "weight_norm")[-1]] == last.weight_norm[-1]
    assert second.summary[layer_keys(DESC["layers"], "ratio")[0]] == pytest.approx(last.ratio[0])
    assert not any(k.startswith("gradflow/act_std/") for k in second.summary)
    assert [len(list((r.files_dir / "media" / "images").rglob("*.png")))
            for r in (first, second)] == [1, 1]
    line_key = chart["columns"].index("lineKey")
    assert list(dict.fromkeys(row[line_key] for row in chart["data"])) == [
        "step 0 (init)", "step 20 (epoch 1)", "step 59 (epoch 2)"]


def test_online_without_network_warns_once_and_the_run_goes_on(wb, monkeypatch, caplog):
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    run_dir = wb / "runs" / "residual-20-s0"
    cfg = {"mode": "online", "init_timeout": 3, "dir": str(wb / "wb")}
    sink = SafeSink(WandbSink(cfg), "W&B")
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="depthlab"):
        drive([LocalSink(run_dir), sink], make_info(run_dir), epochs=1)
    assert time.monotonic() - started < 60
    # What the user sees: depthlab's records. W&B's own internal logger may also
    # record "error in wandb.init()" (it goes to W&B's debug log, not the terminal).
    warnings = [r for r in caplog.records
                if r.levelno >= logging.WARNING and r.name.split(".")[0] == "depthlab"]
    assert len(warnings) == 1 and sink.disabled
    assert "W&B" in warnings[0].getMessage() and "start()" in warnings[0].getMessage()
    for name in ("summary.json", "config.yaml", "gradflow.csv", "metrics_epochs.csv"):
        assert (run_dir / name).exists()
    # the API key is never written anywhere
    assert FAKE_KEY not in caplog.text
    for path in wb.rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), path


def test_online_without_an_api_key_warns_instead_of_prompting(wb, caplog):
    run_dir = wb / "runs" / "residual-20-s0"
    sink = SafeSink(WandbSink({"mode": "online", "dir": str(wb / "wb")}), "W&B")
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="depthlab"):
        drive([LocalSink(run_dir), sink], make_info(run_dir), epochs=1)
    assert time.monotonic() - started < 30
    [warning] = caplog.records
    assert "wandb login" in warning.getMessage()
    assert (run_dir / "summary.json").exists() and not wandb_files(wb)


def test_an_exception_inside_wandb_turns_the_sink_off(wb, monkeypatch, caplog):
    def broken_log(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(wandb.Run, "log", broken_log)
    run_dir = wb / "runs" / "residual-20-s0"
    sink = SafeSink(WandbSink({"mode": "offline", "dir": str(wb / "wb")}), "W&B")
    with caplog.at_level(logging.WARNING, logger="depthlab"):
        drive([LocalSink(run_dir), sink], make_info(run_dir), epochs=2)
    [warning] = caplog.records
    assert "log_gradflow()" in warning.getMessage()
    assert "No space left on device" in warning.getMessage()
    assert sink.disabled and sink.sink.run is None  # the W&B run was closed (abort)
    rows = csv_rows(run_dir / "gradflow.csv")
    assert len({r["step"] for r in rows}) == 7  # every record still in the run directory
    [path] = wandb_files(wb / "wb")
    assert read_wandb_run(path).exit_code == 1


def test_a_fresh_start_gets_a_new_id_and_a_resume_keeps_it(tmp_path):
    sink, run_dir = WandbSink(), tmp_path / "run"
    first = sink._run_id(make_info(run_dir))
    assert (run_dir / "wandb_id.txt").read_text() == first + "\n"
    assert sink._run_id(make_info(run_dir, resumed_from_step=30)) == first
    second = sink._run_id(make_info(run_dir))  # started over (e.g. --fresh)
    assert second != first and len(second) == 8
    assert (run_dir / "wandb_id.txt").read_text() == second + "\n"


def test_disabled_mode_writes_nothing(wb):
    run_dir = wb / "runs" / "residual-20-s0"
    drive([LocalSink(run_dir), WandbSink({"mode": "disabled"})], make_info(run_dir), epochs=1)
    assert not wandb_files(wb) and not (run_dir / "wandb_id.txt").exists()


def test_logger_configs_match_the_sink():
    for option, mode in (("default", "auto"), ("none", "disabled")):
        path = CONF / f"{option}.yaml"
        body = yaml.safe_load(path.read_text())
        assert list(body) == ["wandb"]
        c = WandbConfig.from_mapping(body["wandb"])
        assert c.mode == mode
        assert set(body["wandb"]) == set(WandbConfig.__dataclass_fields__)
        keys = [line for line in path.read_text().splitlines() if line.startswith("  ")]
        assert len(keys) == len(body["wandb"]) and all("#" in line for line in keys), path
    with pytest.raises(ValueError, match="unknown logger.wandb key.*projct"):
        WandbSink({"projct": "x"})
    with pytest.raises(ValueError, match="mode must be one of"):
        WandbSink({"mode": "ofline"})
    with pytest.raises(ValueError, match="series"):
        WandbSink({"series": ["grad_norms"]})


def test_layer_keys_sort_in_depth_order():
    layers = describe(build_model("residual", 20, layout="cifar", shortcut="B"),
                      flops=False)["layers"]
    keys = layer_keys(layers)
    assert keys == sorted(keys)  # W&B sorts panels by name: that is depth order
    assert "gradflow/grad_norm/L009_layer2.0.conv2" in keys
    assert "gradflow/grad_norm/L009_layer2.0.downsample.0" in keys  # projection: same index
    deep = [Layer(i, f"m{i}", "conv", "stage1", False, 1) for i in (1, 999, 1202)]
    assert layer_keys(deep, "ratio") == ["gradflow/ratio/L0001_m1", "gradflow/ratio/L0999_m999",
                                         "gradflow/ratio/L1202_m1202"]


def test_heatmap_cost_is_bounded():
    layers = DESC["layers"]
    small = heatmap_pixels(layers, [0, 10], np.full((2, len(layers)), 0.1))
    steps = list(range(0, 50_000, 10))
    grads = np.random.default_rng(0).lognormal(size=(len(steps), len(layers)))
    grads[:, 0] = 0.0  # zero gradients: drawn grey, not an error
    started = time.monotonic()
    big = heatmap_pixels(layers, steps, grads)
    assert time.monotonic() - started < 10
    assert big.shape == small.shape and big.dtype == np.uint8
    assert len(steps) > HEATMAP_COLUMNS
