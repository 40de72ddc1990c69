"""Composing and checking configs before anything runs or is written.

Hydra composes (struct mode: a misspelt key is an error); this module turns
Hydra's multi-line errors into one line that names the key and what is valid,
and checks what Hydra cannot know (valid depths, positive sizes).
"""

from __future__ import annotations

import difflib
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

CONFIG_MODULE = "depthlab.conf"
CONFIG_NAME = "config"
GROUPS = ["arch", "data", "optim", "schedule", "trainer", "logger", "experiment", "start"]


class ConfigError(ValueError):
    """A config problem the user can fix; str() is one line."""


class DepthError(ConfigError):
    """A depth the architecture does not have in the chosen layout."""


# --- the layout follows the depth family ------------------------------------------
# arch.layout's default is ${depthlab.layout:arch,depth,data layout}: a depth of the
# papers' ImageNet tables takes the imagenet layout on any data (ResNet-18..200,
# DenseNet-121..264; on 32 px images with the small-input stem), every other depth
# the data set's layout. Membership decides, not validity: 50 and 152 are also
# 6n+2 cifar depths. A sweep decides once for all its runs (choose_layout).

def family_layout(arch: str, depth: Any, data_layout: str) -> str:
    from depthlab.models.depths import IMAGENET_DEPTHS  # lazy: only when resolved

    return "imagenet" if depth in IMAGENET_DEPTHS.get(str(arch), ()) else str(data_layout)


if not OmegaConf.has_resolver("depthlab.layout"):
    OmegaConf.register_new_resolver("depthlab.layout", family_layout)
# ${depthlab.block:${arch.preact}} in run names: postact (He et al. 2015) or preact (2016)
if not OmegaConf.has_resolver("depthlab.block"):
    OmegaConf.register_new_resolver("depthlab.block", lambda preact: "preact" if preact else "postact")


@dataclass(frozen=True)
class LayoutChoice:
    layout: str
    reason: str  # why, for the plan
    auto: bool = True  # chosen by depthlab (arch.layout not given)


def choose_layout(pairs: list[tuple[str, int]], data_name: str, data_layout: str) -> LayoutChoice:
    """One layout for every run of a sweep whose runs don't give arch.layout: imagenet
    when every (arch, depth) is in the ImageNet tables, else the data set's layout."""
    from depthlab.models.depths import IMAGENET_DEPTHS

    depths = sorted({d for _, d in pairs})
    listed = ", ".join(str(d) for d in depths)
    inside = sorted({d for a, d in pairs if d in IMAGENET_DEPTHS.get(a, ())})
    if pairs and all(d in IMAGENET_DEPTHS.get(a, ()) for a, d in pairs):
        return LayoutChoice("imagenet", f"{listed}: the papers' ImageNet depths, so the imagenet "
                            "layout on any data; arch.layout=... to choose")
    reason = f"the default of data={data_name}"
    if inside:
        reason += (f"; {', '.join(map(str, inside))} {'is an ImageNet depth' if len(inside) == 1 else 'are ImageNet depths'}, "
                   f"but {', '.join(str(d) for d in depths if d not in inside)} not, and a sweep "
                   "uses one layout for all its runs")
    return LayoutChoice(data_layout, reason)


def layout_is_auto(cfg: DictConfig) -> bool:
    """True where arch.layout is still depthlab's default (nobody gave it)."""
    node = OmegaConf.to_container(cfg.arch, resolve=False).get("layout")
    return isinstance(node, str) and node.startswith("${depthlab.layout:")


def layout_error(err: ConfigError, cfg: dict[str, Any], choice: LayoutChoice) -> ConfigError:
    """An invalid depth under a layout depthlab chose: name the other layout's rule too
    (any other error is returned as it is)."""
    from depthlab.models.depths import DEPTH_RULES

    if not isinstance(err, DepthError):
        return err
    other = "cifar" if choice.layout == "imagenet" else "imagenet"
    rule = DEPTH_RULES.get((cfg["arch"]["name"], other))
    message = str(err)
    if rule and "add arch.layout" not in message:
        message += f"; layout {other} takes {rule}"
    return ConfigError(f"{message} (layout {choice.layout}: {choice.reason})")


def conf_dir() -> Path:
    """The installed config tree (the top-level conf/ in a checkout, the package
    depthlab.conf in a wheel): where importlib finds it, as Hydra's pkg:// does."""
    from importlib.resources import files

    return Path(str(files(CONFIG_MODULE)))


def group_options(group: str, extra_dirs: Iterable[Path] = ()) -> list[str]:
    """Options of a config group (files in conf/<group>/, `_`-prefixed bases excluded)."""
    names = set()
    for root in [conf_dir(), *extra_dirs]:
        folder = Path(root) / group
        if folder.is_dir():
            names.update(p.stem for p in folder.glob("*.yaml") if not p.stem.startswith("_"))
    return sorted(names)


def parse_overrides(overrides: list[str]) -> list[Any]:
    """Parse with Hydra's grammar; a malformed override is a one-line ConfigError."""
    try:
        return OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as err:
        first = str(err).strip().splitlines()[0]
        bad = next((o for o in overrides if o in str(err)), None) or _guess_bad(overrides)
        raise ConfigError(
            f"malformed override {bad!r}: {first}; write key=value, e.g. depth=56 or arch=plain"
        ) from None


def _guess_bad(overrides: list[str]) -> str:
    for o in overrides:
        try:
            OverridesParser.create().parse_overrides([o])
        except OverrideParseException:
            return o
    return " ".join(overrides)


def expand_sweep(overrides: list[str]) -> list[list[str]]:
    """The concrete override lists a sweep will run (Hydra's basic sweeper order)."""
    parsed = parse_overrides(overrides)
    axes: list[list[str]] = []
    for o in parsed:
        key = o.get_key_element()
        if o.is_sweep_override():
            axes.append([f"{key}={v}" for v in o.sweep_string_iterator()])
        else:
            axes.append([f"{key}={o.get_value_element_as_str()}"])
    return [list(combo) for combo in itertools.product(*axes)] if axes else [[]]


def compose_config(overrides: list[str], config_dirs: Iterable[Path] = (), *,
                   resolve: bool = True) -> DictConfig:
    """Compose like `depthlab train` would, with one-line errors (resolved unless
    resolve=False, which keeps interpolations such as arch.layout's default)."""
    parse_overrides(overrides)
    extra = [f"file://{Path(d).resolve()}" for d in config_dirs]
    if extra:
        overrides = [*overrides, f"hydra.searchpath=[{','.join(extra)}]"]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
            cfg = compose(CONFIG_NAME, overrides=overrides, return_hydra_config=True)
            # resolve now so that a bad interpolation fails here, not mid-run
            if resolve:
                OmegaConf.resolve(cfg)
    except MissingConfigException as err:
        raise ConfigError(_missing_message(err, list(config_dirs))) from None
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(_compose_message(err)) from None
    finally:
        GlobalHydra.instance().clear()
    return cfg


def _missing_message(err: MissingConfigException, dirs: list[Path]) -> str:
    text = str(err)
    m = re.search(r"Could not find '([^/']+)/([^']+)'", text)
    if m:
        group, option = m.groups()
        valid = group_options(group, dirs)
        return f"unknown option {option!r} for config group {group}; valid: {', '.join(valid)}"
    return " ".join(text.split())


def _compose_message(err: Exception) -> str:
    text = str(err) + (f"\n{err.__cause__}" if err.__cause__ is not None else "")
    m = re.search(r"Key '[^']+' is not in struct.*?full_key: (\S+)", text, re.S)
    if m:
        return unknown_key_message(m.group(1))
    m = re.search(r"Could not override '([^']+)'", text)
    if m and "not in struct" in text:
        return unknown_key_message(m.group(1))
    if "Could not load" in text or "Could not find" in text:
        return " ".join(text.split())
    return " ".join(text.replace("\n", " ").split())


def unknown_key_message(full_key: str) -> str:
    parent, _, key = full_key.rpartition(".")
    known = _known_keys(parent)
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {parent + '.' if parent else ''}{close[0]}?)" if close else ""
    where = f"in {parent}" if parent else "at the top level"
    return f"unknown config key {full_key!r}{hint}; keys {where}: {', '.join(known)}"


def _known_keys(parent: str) -> list[str]:
    try:
        GlobalHydra.instance().clear()
        with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
            cfg = compose(CONFIG_NAME)
        node = OmegaConf.select(cfg, parent) if parent else cfg
        return sorted(node.keys()) if isinstance(node, DictConfig) else []
    except Exception:  # best effort: only used to word an error
        return []
    finally:
        GlobalHydra.instance().clear()


def check_config(cfg: DictConfig | dict) -> None:
    """What Hydra cannot check: valid depths, positive sizes, the values each trainer switch
    takes, fractions in range (schedule.warmup, schedule.milestones, optim.momentum),
    optimiser and schedule names (depthlab.optim's registries), and trainer.devices against
    this machine's GPUs. Raises ConfigError. Whether this machine has the device the rest
    needs (CUDA for cuda/cuda:N, fp16, CUDA graphs) is depthlab.preflight.check_trainer's."""
    from depthlab.models import ArchitectureError, build_model, check_branch  # noqa: F401 (cheap)
    from depthlab.models.depths import densenet_spec, resnet_spec
    from depthlab.optim import OPTIMIZERS, SCHEDULES, lookup

    c = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
    arch, depth = c.arch.name, c.depth
    if not isinstance(depth, int) or isinstance(depth, bool):
        raise ConfigError(f"depth must be an integer, got {depth!r}")
    try:
        if arch == "dense":
            densenet_spec(depth, c.arch.layout, c.arch.get("growth_rate"))
        elif arch in ("plain", "residual"):
            spec = resnet_spec(depth, c.arch.layout, c.arch.get("block", "auto"))
            check_branch(OmegaConf.to_container(c.arch, resolve=True), arch, spec.block)
        else:
            raise ArchitectureError(f"unknown architecture {arch!r}; valid: plain, residual, dense")
    except ArchitectureError as err:
        raise DepthError(str(err)) from None
    t = c.trainer
    positive = {"trainer.batch_size": t.batch_size, "trainer.eval_batch_size": t.eval_batch_size,
                "trainer.eval_every": t.eval_every, "trainer.log_every": t.log_every,
                "gradflow.every": c.gradflow.every, "optim.lr": c.optim.lr}
    if t.iterations is None:
        positive["trainer.epochs"] = t.epochs
    else:
        positive["trainer.iterations"] = t.iterations
    for key, value in positive.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{key} must be a positive number, got {value!r}")
    for key in ("train_subset", "test_subset"):
        value = c.data.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise ConfigError(f"data.{key} must be a positive integer or null, got {value!r}")
    if t.precision not in ("fp32", "bf16", "fp16", "auto"):
        raise ConfigError(f"trainer.precision must be fp32, bf16, fp16 or auto, got {t.precision!r}")
    if t.get("channels_last", False) not in (True, False, "auto"):
        raise ConfigError(f"trainer.channels_last must be true, false or auto, got {t.channels_last!r}")
    if t.get("cuda_graphs", False) not in (True, False, "auto"):
        raise ConfigError(f"trainer.cuda_graphs must be true, false or auto, got {t.cuda_graphs!r}")
    threads = t.get("threads")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise ConfigError(f"trainer.threads must be a positive number of CPU threads, or null for "
                          f"torch's default, got {threads!r}")
    device = str(t.device)
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise ConfigError(f"trainer.device must be auto, cpu, cuda or cuda:N, got {device!r}")
    # bf16 autocast runs on the CPU too; fp16 needs CUDA (its GradScaler). train.run
    # applies the same rule once trainer.device=auto is resolved.
    if t.precision == "fp16" and device == "cpu":
        raise ConfigError("trainer.precision=fp16 needs a CUDA device; use bf16 or fp32 on the CPU")
    devices = t.get("devices", 1)
    if not isinstance(devices, int) or isinstance(devices, bool) or devices < 1:
        raise ConfigError(f"trainer.devices must be a positive number of processes, got {devices!r}")
    if t.batch_size % devices:
        raise ConfigError(f"trainer.batch_size={t.batch_size} is the global batch and must divide "
                          f"by trainer.devices={devices}; use a multiple of {devices}")
    if devices > 1 and device != "cpu":
        import torch

        gpus = torch.cuda.device_count()  # auto without a GPU: CPU processes (gloo)
        if (gpus or device != "auto") and gpus < devices:
            raise ConfigError(f"trainer.devices={devices} but this machine has {gpus} CUDA "
                              f"device(s); use at most {gpus}, or trainer.device=cpu")
    if c.arch.get("sync_bn") and device == "cpu":
        raise ConfigError("arch.sync_bn=true needs CUDA (SyncBatchNorm); use it with trainer.device=cuda")
    wandb_cfg = c.get("logger", {}).get("wandb")
    if wandb_cfg is not None:
        from depthlab.tracking.wandb_sink import WandbConfig  # no wandb import: cheap

        try:
            WandbConfig.from_mapping(OmegaConf.to_container(wandb_cfg, resolve=True))
        except ValueError as err:
            raise ConfigError(" ".join(str(err).split())) from None
    try:  # the names train.run accepts
        lookup(OPTIMIZERS, "optimizer", "optim.name", c.optim.name)
        lookup(SCHEDULES, "schedule", "schedule.name", c.schedule.name)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if c.schedule.name == "step" and any(not 0 < m < 1 for m in c.schedule.milestones):
        raise ConfigError("schedule.milestones are fractions of the run, each in (0, 1)")
    _check_fraction("schedule.warmup", c.schedule.get("warmup", 0.0),
                    "the fraction of the run's steps with a linear warm-up (0: none)")
    if "momentum" in c.optim:
        _check_fraction("optim.momentum", c.optim.momentum, "SGD's momentum (0: none)")


def _check_fraction(key: str, value: Any, what: str) -> None:
    """`value` must be a number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(f"{key} is {what}, a number in [0, 1); got {value!r}")
