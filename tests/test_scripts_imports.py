"""scripts/ are command lines over the package: each imports depthlab, the standard library and
third-party libraries only, never another script; and nothing in scripts/, depthlab/ or tests/
edits sys.path. Read from the source with ast; nothing is imported from the scripts."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))
SCRIPT_NAMES = {p.stem for p in SCRIPTS}
PATH_EDITS = {"insert", "append", "extend", "remove", "pop", "clear"}


def imported(path: Path) -> list[tuple[str, int, int]]:
    """(top-level module, relative level, line) of every import in the file, anywhere in it."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name.partition(".")[0], 0, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append(((node.module or "").partition(".")[0], node.level, node.lineno))
    return found


def is_sys_path(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "path"
            and isinstance(node.value, ast.Name) and node.value.id == "sys")


def sys_path_edits(path: Path) -> list[int]:
    """Lines that change sys.path: sys.path.insert/append/... calls, assignments to sys.path
    or a slice of it, sys.path += ..."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in PATH_EDITS and is_sys_path(node.func.value)):
            lines.append(node.lineno)
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if is_sys_path(t) or (isinstance(t, ast.Subscript) and is_sys_path(t.value)):
                    lines.append(node.lineno)
    return sorted(lines)


def kind(module: str) -> str:
    if module == "depthlab":
        return "depthlab"
    if module in SCRIPT_NAMES:
        return "script"
    if module in sys.stdlib_module_names or module == "__future__":
        return "stdlib"
    spec = importlib.util.find_spec(module)
    if spec is None:
        return "missing"
    origin = Path(spec.origin or next(iter(spec.submodule_search_locations or []), "")).resolve()
    return "script" if origin.is_relative_to(ROOT / "scripts") else "third-party"


def test_there_are_scripts_to_check():
    assert {"benchmark", "gpu_benchmark", "gpu_check"} <= SCRIPT_NAMES


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_a_script_imports_depthlab_the_standard_library_and_third_party_only(script):
    bad = [f"line {line}: {'relative import' if level else f'{module} ({kind(module)})'}"
           for module, level, line in imported(script)
           if level or kind(module) not in ("depthlab", "stdlib", "third-party")]
    assert not bad, f"{script.name} imports what it must not: {bad}"


def test_the_checker_tells_a_script_from_a_library():
    assert kind("benchmark") == "script" and kind("gpu_check") == "script"
    assert kind("json") == "stdlib" and kind("torch") == "third-party" and kind("depthlab") == "depthlab"


def test_no_file_edits_sys_path():
    files = [p for folder in ("scripts", "depthlab", "tests") for p in sorted((ROOT / folder).rglob("*.py"))
             if "__pycache__" not in p.parts]
    assert len(files) > 50
    bad = {str(p.relative_to(ROOT)): lines for p in files if (lines := sys_path_edits(p))}
    assert not bad, f"sys.path edited (import the package instead): {bad}"


def test_the_sys_path_finder_finds_each_form(tmp_path):
    f = tmp_path / "edits.py"
    f.write_text("import sys\nsys.path.insert(0, 'x')\nsys.path.append('y')\nsys.path[:0] = ['z']\n"
                 "sys.path += ['w']\nsys.path = []\nprint(sys.path)\n")
    assert sys_path_edits(f) == [2, 3, 4, 5, 6]
