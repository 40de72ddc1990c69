"""The settings a resolved device or launch cannot run: one class per kind of mistake, each one line.

Every one is a user error (the run's config, not depthlab, is wrong): launch.py records it in
the run's summary and the CLI ends with its one line, exit 2.
"""

from __future__ import annotations


class SettingError(ValueError):
    """A trainer or arch setting that this device or launch cannot run; str() is one line."""


class DeviceError(SettingError):
    """trainer.device that names no device of this machine (CUDA where there is none, cuda:N
    past the last GPU) or no device at all."""


class PrecisionError(SettingError):
    """trainer.precision that the resolved device cannot run (fp16 without CUDA)."""


class CudaGraphsError(SettingError):
    """trainer.cuda_graphs that is invalid, or true where a captured graph cannot run."""


class SyncBatchNormError(SettingError):
    """arch.sync_bn=true where SyncBatchNorm cannot run (not on CUDA)."""


class DevicesError(SettingError):
    """trainer.devices that does not fit how the run was started."""


class ResumeError(SettingError):
    """A resume that cannot continue the run as it was trained (another number of processes
    where batch norm takes its statistics per process)."""
