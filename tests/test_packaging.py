"""The top-level conf/ is installed with the package: a wheel holds every YAML file
and every package, and a non-editable install composes configs from it alone."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                    "--no-build-isolation", "--quiet", "-w", str(out)], check=True,
                   capture_output=True, text=True)
    [built] = out.glob("depthlab-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_holds_every_config_and_every_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = sorted(p.relative_to(ROOT / "conf").as_posix() for p in (ROOT / "conf").rglob("*.yaml"))
    assert len(configs) >= 20 and "config.yaml" in configs and "arch/_resnet.yaml" in configs
    assert [c for c in configs if f"depthlab/conf/{c}" not in names] == []
    packages = sorted(p.parent.relative_to(ROOT).as_posix()
                      for p in (ROOT / "depthlab").rglob("__init__.py"))
    assert [p for p in packages if f"{p}/__init__.py" not in names] == []
    assert "depthlab/conf/__init__.py" in names
    assert not any(n.startswith(("conf/", "tests/", "hydra_plugins")) for n in names)


@pytest.mark.slow
def test_a_non_editable_install_composes_from_its_own_files(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target",
                    str(target), str(wheel)], check=True, capture_output=True, text=True)
    code = (
        "import sys\n"
        "import depthlab\n"
        "from depthlab.config import compose_config, conf_dir, group_options\n"
        "assert depthlab.__file__.startswith(sys.argv[1]), depthlab.__file__\n"
        "assert str(conf_dir()).startswith(sys.argv[1]), conf_dir()\n"
        "cfg = compose_config(['experiment=quick', 'depth=50', 'arch=plain'])\n"
        "print(cfg.arch.name, cfg.depth, cfg.data.train_subset, group_options('experiment'))\n"
    )
    # PYTHONPATH puts the wheel's files before site-packages (and the editable install there)
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run([sys.executable, "-c", code, str(target)], cwd=tmp_path,
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    arch, depth, subset, *_ = done.stdout.split()
    assert (arch, depth) == ("plain", "50") and int(subset) > 0
    assert "resnet_cifar_paper" in done.stdout and "quick" in done.stdout


def test_this_install_finds_every_config():
    """Editable (as the README installs) or not, the installed tree is conf/'s."""
    from depthlab.config import conf_dir, group_options

    assert (conf_dir() / "config.yaml").is_file()
    for group in ("arch", "data", "experiment", "optim", "schedule", "trainer", "logger"):
        expected = sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml")
                          if not p.stem.startswith("_"))
        assert group_options(group) == expected
