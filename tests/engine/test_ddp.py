"""One run on two CPU processes (gloo): DistributedDataParallel started by depthlab
through PyTorch's elastic launcher, by torchrun, and by submitit's local executor.

The nets have no batch norm, so two ranks on halves of each global batch compute
what one process computes on the whole batch; what is left is float summation order
(the gradients are averaged by an all-reduce): after 16 SGD steps the parameters
agree to TOL (5e-8 measured on an AMD EPYC, 4e-6 on an AVX-512 Xeon, whose kernels sum
in another order), training curves and evaluations likewise. The
per-layer gradient norms agree to GRAD_RTOL: a weight gradient is a sum over the batch
and the pixels of terms of both signs, so the order of summation (two half batches,
then the all-reduce) moves it relatively more (up to 4e-4 measured on an AVX-512 Xeon; within 1e-5
absolute on an AMD EPYC), still far inside what a norm read before the all-reduce (one
half batch's gradient) or summed instead of averaged (twice the norm) would show.
The block statistics of activations.csv (output std, backward signal) are the global
batch's too (the ranks' sums are all-reduced): to BLOCK_RTOL (6e-6 measured on an AMD
EPYC), where rank 0's half batch alone is off by 0.3% to 2% in the std and by 41% in the
backward signal (its loss is the mean over half the images).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from cli.helpers import evaluate_by_hand, summary, synthetic_test_set, wait_for_epochs

from depthlab.models import build_model

pytestmark = pytest.mark.slow

ARGS = ["arch=residual", "depth=8", "arch.norm=none", "optim.lr=0.02", "data=synthetic",
        "data.train_size=256", "data.test_size=71", "trainer.batch_size=32",
        "trainer.eval_batch_size=16", "trainer.epochs=2", "trainer.log_every=4", "gradflow.every=4",
        "trainer.threads=1", "logger=none"]
LONG = [a for a in ARGS if not a.startswith("trainer.epochs")] + ["trainer.epochs=6"]
BN = [a for a in ARGS if a != "arch.norm=none"] + ["arch.norm=batch"]  # statistics per rank
FILES = {"activations.csv", "blocks.csv", "checkpoint.prev.pt", "checkpoint.pt", "config.yaml",
         "gradflow.csv", "layers.csv", "metrics_epochs.csv", "metrics_steps.csv", "summary.json",
         "train.log"}
TOL = 1e-4
GRAD_RTOL = 2e-3  # relative, gradient norms of gradflow.csv (see above)
BLOCK_RTOL = 5e-4  # relative, act_std and back_norm of activations.csv (see above)


def depthlab(*args: str, cwd: Path, env=None, timeout=300) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "depthlab", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    return done


def trained(*args: str, cwd: Path) -> Path:
    done = depthlab("train", *args, cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    name = next(a.split("=", 1)[1] for a in args if a.startswith("run.name="))
    return cwd / "runs" / name


def params(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoint.pt", weights_only=True)["model"]


def assert_same_run(run: Path, ref: Path, tol: float = TOL) -> None:
    a, b = params(run), params(ref)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), rtol=0, atol=tol), k
    for name, columns in (("metrics_epochs.csv", ["train_loss", "train_error", "test_loss", "test_error"]),
                          ("metrics_steps.csv", ["loss", "error", "lr"]),
                          ("gradflow.csv", ["weight_norm"])):
        x, y = pd.read_csv(run / name), pd.read_csv(ref / name)
        assert len(x) == len(y) > 0, name
        for c in columns:
            assert (x[c] - y[c]).abs().max() <= tol * max(1.0, y[c].abs().max()), (name, c)
    x, y = pd.read_csv(run / "gradflow.csv"), pd.read_csv(ref / "gradflow.csv")
    assert (x[["step", "layer"]] == y[["step", "layer"]]).all().all()
    assert ((x["grad_norm"] - y["grad_norm"]).abs() <= GRAD_RTOL * y["grad_norm"].abs()).all()
    x, y = pd.read_csv(run / "activations.csv"), pd.read_csv(ref / "activations.csv")
    assert len(x) == len(y) > 0
    assert (x[["step", "block"]] == y[["step", "block"]]).all().all()
    for c in ("act_std", "back_norm"):
        assert (y[c] > 0).all(), c
        assert ((x[c] - y[c]).abs() <= BLOCK_RTOL * y[c]).all(), c
    s, r = summary(run), summary(ref)
    assert s["status"] == r["status"] == "completed"
    assert s["steps_completed"] == r["steps_completed"]
    assert s["final_test_error"] == r["final_test_error"]  # the same 71 predictions


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    """One process on the whole global batch."""
    return trained(*ARGS, "run.name=one", cwd=tmp_path_factory.mktemp("one"))


@pytest.fixture(scope="module")
def long_ref(tmp_path_factory):
    """Two ranks, uninterrupted, 6 epochs: what an interrupted two-rank run resumes to."""
    return trained(*LONG, "trainer.devices=2", "run.name=two", cwd=tmp_path_factory.mktemp("two"))


def test_two_ranks_equal_one_process_on_the_global_batch(ref, tmp_path):
    run = trained(*ARGS, "trainer.devices=2", "run.name=ddp", cwd=tmp_path)
    assert_same_run(run, ref)
    assert summary(run)["processes"] == 2 and "processes" not in summary(ref)
    assert {p.name for p in run.iterdir()} - {".hydra"} == FILES
    # the reduced evaluation counts each of the 71 test images once (36 + 35)
    assert summary(run)["test_size"] == 71
    log = (run / "train.log").read_text()
    assert log.count("epoch 2/2") == 1 and "rank 1" not in log  # rank 0's log alone


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_under_torchrun_every_rank_trains_and_only_rank_0_writes(ref, tmp_path):
    # Ranks started as torchrun starts them (its environment variables), each pointed at
    # its own runs_dir (a key that does not change the run): whatever rank 1 wrote
    # would be in b/. W&B (offline) on: one W&B run, rank 0's.
    port = free_port()
    procs = []
    for rank, where in ((0, "a"), (1, "b")):
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2"}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "depthlab", "train", *ARGS, "logger=default", "run.name=tr",
             f"paths.runs_dir={where}"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert_same_run(tmp_path / "a" / "tr", ref)
    assert {p.name for p in (tmp_path / "a" / "tr").iterdir()} - {".hydra"} == FILES | {"wandb_id.txt"}
    assert len(list(tmp_path.rglob("*.wandb"))) == 1
    written = [p for p in (tmp_path / "b").rglob("*") if p.is_file()]
    assert written == []  # Hydra made rank 1's job directory; nothing was written in it


def test_torchrun_itself_runs_depthlab(ref, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "depthlab", "train", *ARGS, "run.name=tr"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    run = tmp_path / "runs" / "tr"
    assert summary(run)["processes"] == 2
    assert_same_run(run, ref)


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("how", ["kill -9 depthlab", "Ctrl-C", "SIGTERM to depthlab"])
def test_a_stopped_two_rank_run_resumes_to_the_same_numbers(how, long_ref, tmp_path):
    cmd = [sys.executable, "-m", "depthlab", "train", *LONG, "trainer.devices=2", "run.name=two"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    run = tmp_path / "runs" / "two"
    wait_for_epochs(run, 2, proc)
    workers = children(proc.pid)  # the two ranks and multiprocessing's resource tracker
    ranks = [w for w in workers if b"spawn_main" in Path(f"/proc/{w}/cmdline").read_bytes()]
    assert len(ranks) == 2
    if how == "kill -9 depthlab":
        os.kill(proc.pid, signal.SIGKILL)  # the launcher alone: its workers must not live on
    elif how == "Ctrl-C":
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches every process
    else:
        os.kill(proc.pid, signal.SIGTERM)  # the elastic launcher passes it on
    out = proc.communicate(timeout=120)[0]
    end = time.time() + 30
    while any(alive(w) for w in workers) and time.time() < end:
        time.sleep(0.1)
    assert not any(alive(w) for w in workers)
    if how == "kill -9 depthlab":
        assert proc.returncode == -signal.SIGKILL
        assert summary(run)["status"] == "running"
    else:
        assert proc.returncode == 130, out
        assert summary(run)["status"] == "interrupted", out
        assert 2 <= summary(run)["epochs_completed"] < 6
        assert "interrupted at step" in out and "Traceback" not in out
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    epochs = pd.read_csv(run / "metrics_epochs.csv")
    assert list(epochs.epoch) == [1, 2, 3, 4, 5, 6]
    assert_same_run(run, long_ref, tol=0)  # bit for bit: the same ranks, the same checkpoint


def test_a_sweep_run_as_two_submitit_tasks(ref, tmp_path):
    done = depthlab("sweep", *ARGS, "hydra/launcher=submitit_local",
                    "hydra.launcher.tasks_per_node=2", "sweep.name=tasks", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    run = tmp_path / "runs" / "tasks" / "residual-8-s0"
    assert summary(run)["processes"] == 2
    assert_same_run(run, ref)


def test_a_bad_setting_in_a_worker_is_one_line(tmp_path):
    done = depthlab("train", *ARGS, "trainer.devices=2", "data.crop_padding=99", cwd=tmp_path)
    assert done.returncode == 2
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert lines == ["error: data.crop_padding must be 0..31 pixels, got 99"]
    assert not (tmp_path / "runs").exists()


@pytest.fixture(scope="module")
def bn_two(tmp_path_factory):
    """Two ranks, batch norm without sync_bn: each rank's statistics are its half batch's."""
    return trained(*BN, "trainer.devices=2", "run.name=bn", cwd=tmp_path_factory.mktemp("bn"))


def test_two_ranks_with_batch_norm_evaluate_the_checkpoint_they_save(bn_two):
    # DDP broadcasts rank 0's buffers at each forward, then every rank updates its own on its
    # slice; the test error must be the saved model's (rank 0's buffers), evaluated here on
    # one process over all 71 images
    state = torch.load(bn_two / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 3  # the checkpoint after the last (2nd) epoch
    model = build_model("residual", 8, num_classes=10, layout="cifar", image_size=32, norm="batch")
    model.load_state_dict(state["model"])
    error, loss, seen = evaluate_by_hand(model, synthetic_test_set(256, 71))
    assert seen == 71
    last = pd.read_csv(bn_two / "metrics_epochs.csv").iloc[-1]
    assert summary(bn_two)["final_test_error"] == last.test_error == pytest.approx(error, abs=1e-12)
    assert last.test_loss == pytest.approx(loss, rel=1e-6)


def killed_in_epoch_2(run: Path) -> None:
    """Leave `run` as a kill -9 in its second epoch does: the checkpoint of epoch 1 (the
    previous one), the rows written since, summary.json saying running."""
    shutil.copy(run / "checkpoint.prev.pt", run / "checkpoint.pt")
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 2
    s = summary(run)
    for key in ("finished_at", "final_test_error", "final_train_error"):
        s.pop(key, None)
    (run / "summary.json").write_text(json.dumps({**s, "status": "running"}))


def test_a_two_rank_run_resumes_on_one_process_to_the_same_numbers(ref, tmp_path):
    # no batch norm: every step computes the same whatever the split of the global batch, so
    # a run trained on 2 ranks and resumed on 1 is the one-process run, to float order
    run = trained(*ARGS, "trainer.devices=2", "run.name=moved", cwd=tmp_path)
    killed_in_epoch_2(run)
    done = depthlab("train", *ARGS, "trainer.devices=1", "run.name=moved", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resuming at epoch 2" in (run / "train.log").read_text()
    assert_same_run(run, ref)
    s = summary(run)
    assert s["process_counts"] == [2, 1] and "processes" not in s  # this sitting: one process
    assert list(pd.read_csv(run / "metrics_epochs.csv").epoch) == [1, 2]


def test_batch_norm_per_rank_refuses_to_resume_on_another_number_of_processes(bn_two, tmp_path):
    # per-rank statistics (16 images on 2 ranks, 32 on 1) change the trajectory: one line, exit
    # 2, the run directory left as it was
    run = tmp_path / "runs" / "bn"
    shutil.copytree(bn_two, run)
    killed_in_epoch_2(run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != "train.log"}
    done = depthlab("train", *BN, "trainer.devices=1", "run.name=bn", cwd=tmp_path)
    assert done.returncode == 2
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "trained on 2 processes with batch norm over 16 images" in lines[0]
    assert "trainer.devices=2" in lines[0]
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != "train.log"}
    assert after == before
