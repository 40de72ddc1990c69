"""The start group (conf/start/) and the issue #17 experiments: what each start sets, run
names that keep the runs of one sweep apart, and the plain net ignoring zero-init."""

from __future__ import annotations

import itertools

import pytest

from depthlab.config import ConfigError, check_config, compose_config, expand_sweep
from depthlab.optim import learning_rate


@pytest.mark.parametrize("start,zero_init,warmup", [("paper", False, 0.0),
                                                    ("zero_init", True, 0.0),
                                                    ("warmup", False, 0.125)])
def test_each_start_sets_init_and_warmup(start, zero_init, warmup):
    cfg = compose_config(["experiment=cifar10_init", f"start={start}"])
    assert cfg.start.name == start
    assert (cfg.arch.zero_init_residual, cfg.schedule.warmup) == (zero_init, warmup)
    # the budget is cifar10_degradation's
    assert (cfg.trainer.epochs, cfg.data.train_subset, cfg.optim.lr, cfg.arch.shortcut) == (
        8, 10000, 0.1, "A")


def test_the_start_wins_over_the_experiment():
    # experiment=quick warms up 30%; start= comes after it in the defaults list
    cfg = compose_config(["experiment=quick", "start=paper"])
    assert cfg.schedule.warmup == 0.0


def test_warmup_is_the_first_epoch_of_eight():
    # 624 steps (78 per epoch): the lr rises over steps 0..77, reaches 0.1 at step 77
    cfg = compose_config(["experiment=cifar10_init", "start=warmup"])
    sched = dict(cfg.schedule)
    lrs = [learning_rate(sched, 0.1, step, 624) for step in (0, 76, 77, 78, 311, 312)]
    assert lrs[:3] == pytest.approx([0.1 / 78, 0.1 * 77 / 78, 0.1])
    assert lrs[3:] == pytest.approx([0.1, 0.1, 0.01])


def test_sweep_runs_have_distinct_names():
    grid = ["experiment=cifar10_init", "arch=plain,residual", "start=paper,zero_init,warmup",
            "depth=20,56", "seed=0,1"]
    names = [compose_config(run).run.name for run in expand_sweep(grid)]
    assert len(names) == len(set(names)) == 24
    assert "residual-56-zero_init-s1" in names
    # no start given: the paper's start, named so
    assert compose_config(["experiment=cifar10_init"]).run.name == "residual-20-paper-s0"


def test_normfree_experiment_names_the_branch_and_checks_it():
    names = {compose_config(["experiment=cifar10_normfree", f"arch.branch={b}",
                             f"depth={d}"]).run.name
             for b, d in itertools.product(("skipinit", "rezero", "fixup"), (20, 56))}
    assert len(names) == 6 and "residual-fixup-56-s0" in names
    cfg = compose_config(["experiment=cifar10_normfree", "arch.branch=fixup"])
    assert cfg.arch.norm == "none" and cfg.start.name == "paper"
    check_config(cfg)
    bad = compose_config(["experiment=cifar10_normfree", "arch.branch=fixup", "arch.norm=batch"])
    with pytest.raises(ConfigError, match="add arch.norm=none"):
        check_config(bad)
