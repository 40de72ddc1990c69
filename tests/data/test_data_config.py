"""conf/data/*.yaml against the code: same keys and defaults, every key
commented; and the errors of build_data itself."""

from __future__ import annotations

import dataclasses
import re

import pytest
from omegaconf import OmegaConf

from depthlab.config import conf_dir
from depthlab.data import NAMES, DataError, build_data
from depthlab.data.cifar10 import CIFAR10Options
from depthlab.data.folder import FolderOptions, ImageNetOptions
from depthlab.data.synthetic import SyntheticOptions

CONF = conf_dir() / "data"
OPTIONS = {"cifar10": CIFAR10Options, "imagenet": ImageNetOptions, "folder": FolderOptions,
           "synthetic": SyntheticOptions}


def test_one_config_file_per_data_set():
    assert sorted(p.stem for p in CONF.glob("*.yaml")) == sorted(NAMES) == sorted(OPTIONS)


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_config_matches_code_defaults(name, monkeypatch):
    monkeypatch.setenv("DEPTHLAB_DATA", "/data/here")
    cfg = OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml"), resolve=True)
    assert cfg.pop("name") == name
    assert cfg.pop("layout") in ("cifar", "imagenet")  # the model's default layout, not a data option
    defaults = dataclasses.asdict(OPTIONS[name]())
    assert cfg == defaults


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_every_key_says_what_it_means(name):
    for line in (CONF / f"{name}.yaml").read_text().splitlines():
        if re.match(r"^\w+:", line) and not line.startswith("name:"):
            assert " # " in line, f"{name}.yaml: no comment on {line!r}"


def build(cfg, **kw):
    args = dict(batch_size=4, eval_batch_size=4, device="cpu", seed=0) | kw
    return build_data(cfg, **args)


def message(cfg, **kw) -> str:
    with pytest.raises(DataError) as err:
        build(cfg, **kw)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_unknown_name_lists_the_valid_ones():
    msg = message({"name": "mnist"})
    assert "'mnist'" in msg and all(n in msg for n in NAMES)


def test_unknown_key_is_an_error():
    msg = message({"name": "synthetic", "trian_size": 10})
    assert "data.trian_size" in msg and "train_size" in msg


def test_wrong_types_are_errors():
    assert "data.train_size must be an integer" in message({"name": "synthetic", "train_size": "many"})
    assert "data.augment must be true or false" in message({"name": "synthetic", "augment": "yes"})
    assert "data.train_subset must be an integer or null" in message(
        {"name": "cifar10", "train_subset": 1.5})


def test_batch_sizes_are_checked():
    assert "batch_size must be a positive integer" in message({"name": "synthetic"}, batch_size=0)


def test_dictconfig_with_interpolation_works():
    cfg = OmegaConf.load(CONF / "synthetic.yaml")
    cfg.train_size = "${oc.decode:'64'}"
    assert build(cfg).train_size == 64
