"""How a run on several processes is configured and planned (no processes started)."""

import json

from cli.helpers import cli

from depthlab.config import compose_config


def test_slurm_ddp_gives_each_gpu_one_task():
    cfg = compose_config(["hydra/launcher=slurm_ddp", "hydra.launcher.nodes=2",
                          "hydra.launcher.gpus_per_node=4"], resolve=False)
    launcher = cfg.hydra.launcher
    assert "SlurmLauncher" in launcher._target_
    assert (launcher.nodes, launcher.gpus_per_node, launcher.tasks_per_node) == (2, 4, 4)


def test_the_plan_says_how_the_global_batch_is_split(tmp_path):
    result = cli("sweep", "arch=residual", "depth=8", "data=synthetic", "data.train_size=256",
                 "trainer.devices=2", "trainer.batch_size=64", "logger=none", "--dry-run")
    assert result.exit_code == 0, result.output
    assert ("processes 2 per run (DistributedDataParallel): the global batch 64 = 2 x 32"
            in " ".join(result.output.split()))
    tasks = cli("sweep", "arch=residual", "depth=8", "data=synthetic", "data.train_size=256",
                "hydra/launcher=submitit_local", "hydra.launcher.tasks_per_node=4", "logger=none",
                "--dry-run")
    assert "processes 4 per run" in tasks.output
    assert not (tmp_path / "runs").exists()


def test_devices_is_not_part_of_what_a_run_is(tmp_path):
    # a run started on two processes may be resumed on one (the global batch is the recipe)
    from depthlab.launch import config_difference

    one = json.loads(json.dumps(dict(trainer={"devices": 1, "batch_size": 128})))
    two = json.loads(json.dumps(dict(trainer={"devices": 2, "batch_size": 128})))
    assert config_difference(one, two) == []
    two["trainer"]["batch_size"] = 64
    assert config_difference(one, two) == ["trainer.batch_size: 128 -> 64"]
