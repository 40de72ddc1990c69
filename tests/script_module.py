"""Import one of scripts/*.py as a module, for the tests of the scripts."""

from __future__ import annotations

import importlib.util
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


@contextmanager
def script_module(filename: str, name: str) -> Iterator[object]:
    """scripts/<filename> loaded as module `name`, unloaded afterwards; scripts/ is put on
    sys.path so that a script can import its sibling (gpu_check imports benchmark)."""
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / filename)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)
