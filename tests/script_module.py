"""Load one of scripts/*.py from its file, for the tests of its command line.

Tests of what the scripts measure import depthlab.bench itself; a script is loaded only to
call its main(argv) in this process (faster than a subprocess). runpy runs the file under
its own name: nothing is put on sys.path, and nothing stays in sys.modules.
"""

from __future__ import annotations

import runpy
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


@contextmanager
def script_module(filename: str, name: str) -> Iterator[SimpleNamespace]:
    """scripts/<filename>'s globals (main, ...) as attributes, run as module `name`."""
    yield SimpleNamespace(**runpy.run_path(str(SCRIPTS / filename), run_name=name))
