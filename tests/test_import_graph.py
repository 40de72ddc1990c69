"""The import graph of depthlab/: no cycles (imports inside functions count too), and the
one-way rules of DESIGN.md that hold. Read from the source with ast; nothing is imported."""

from __future__ import annotations

import ast
from collections import deque
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "depthlab"  # the package's source directory


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@lru_cache(maxsize=None)
def modules() -> dict[str, Path]:
    """Every module under depthlab/ by dotted name; a package's __init__ is the package
    (and wins over a module file of the same name, as Python's import does)."""
    found: dict[str, Path] = {}
    for path in sorted(ROOT.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        name = _module_name(path)
        if name not in found or path.name == "__init__.py":
            found[name] = path
    return found


def _target(name: str) -> str | None:
    """The depthlab module `name` stands for: itself, else its longest prefix that is one."""
    mods = modules()
    while name:
        if name in mods:
            return name
        name = name.rpartition(".")[0]
    return None


@lru_cache(maxsize=None)
def _imports(module: str) -> tuple[frozenset[str], frozenset[str]]:
    """(depthlab modules, top-level external packages) that `module` imports anywhere in
    its source: at the top, inside functions, under `if TYPE_CHECKING` alike."""
    path = modules()[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    inside, outside = set(), set()

    def add(name: str) -> None:
        if name == "depthlab" or name.startswith("depthlab."):
            target = _target(name)
            if target is not None and target != module:
                inside.add(target)
        else:
            outside.add(name.partition(".")[0])

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the package, one level up per extra dot
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                # from depthlab.x import y: the module depthlab.x.y if there is one, else depthlab.x
                full = f"{source}.{alias.name}"
                add(full if alias.name != "*" and full in modules() else source)
    return frozenset(inside), frozenset(outside)


def graph() -> dict[str, frozenset[str]]:
    """module -> the depthlab modules it imports."""
    return {m: _imports(m)[0] for m in modules()}


def _cycles(g: dict[str, frozenset[str]]) -> list[list[str]]:
    """One shortest cycle per strongly connected component with more than one module
    (Tarjan's algorithm, then a breadth-first search inside the component)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:  # recursion depth is bounded by the number of modules
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(g):
        if v not in index:
            connect(v)
    cycles = []
    for component in sorted(components):
        members = set(component)
        start = component[0]
        previous: dict[str, str] = {}
        queue = deque([start])
        while queue:
            v = queue.popleft()
            if start in g[v] and (v != start or not previous):
                path = [v]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                cycles.append([*reversed(path), start])
                break
            for w in sorted(g[v] & members):
                if w not in previous and w != start:
                    previous[w] = v
                    queue.append(w)
        if len(members) > 2:
            cycles[-1].append(f"(component: {', '.join(component)})")
    return cycles


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _loaded_with(module: str) -> list[str]:
    """Every depthlab module that `module` may load, at import or inside a call: what it
    imports, and the packages above each (depthlab.models.depths runs depthlab/models/
    __init__.py first), breadth first."""
    g, seen, queue = graph(), [], deque([module])
    while queue:
        m = queue.popleft()
        parents = [m.rsplit(".", k)[0] for k in range(m.count("."), 0, -1)]
        for n in [*parents, m, *sorted(g[m])]:
            if n not in seen and n in g:
                seen.append(n)
                queue.append(n)
    return seen


def test_the_walk_sees_the_whole_package():
    mods = modules()
    assert {"depthlab", "depthlab.train", "depthlab.models", "depthlab.cli"} <= set(mods)
    # imports inside functions count: the CLI imports the launcher only when a run starts
    assert "depthlab.launch" in graph()["depthlab.cli.train"]


def test_cycle_finder_finds_a_cycle_and_its_path():
    g = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}),
         "d": frozenset({"a"})}
    assert _cycles(g) == [["a", "b", "c", "a", "(component: a, b, c)"]]
    assert _cycles({"a": frozenset({"b"}), "b": frozenset()}) == []


def test_no_import_cycles():
    cycles = _cycles(graph())
    assert not cycles, "import cycles in depthlab/:\n" + "\n".join(
        " -> ".join(c) for c in cycles)


def test_models_import_nothing_of_depthlab_outside_models():
    bad = {m: sorted(t for t in graph()[m] if not _under(t, "depthlab.models"))
           for m in modules() if _under(m, "depthlab.models")}
    bad = {m: t for m, t in bad.items() if t}
    assert not bad, f"depthlab.models reaches outside models: {bad}"


def test_models_know_nothing_of_hydra_or_the_cli():
    bad = {m: sorted(_imports(m)[1] & {"hydra", "omegaconf", "typer", "rich"})
           for m in modules() if _under(m, "depthlab.models")}
    bad = {m: t for m, t in bad.items() if t}
    assert not bad, f"depthlab.models imports config or CLI libraries: {bad}"


def test_analysis_imports_neither_plots_nor_report_nor_torch():
    """Directly or through any depthlab module it loads (package __init__ files included):
    analysis reads run directories, and works where torch and matplotlib's figures are not."""
    bad = {}
    for m in modules():
        if not _under(m, "depthlab.analysis"):
            continue
        loaded = _loaded_with(m)
        wrong = [t for t in loaded if _under(t, "depthlab.plots") or _under(t, "depthlab.report")]
        wrong += [f"torch (via {t})" for t in loaded if "torch" in _imports(t)[1]]
        if wrong:
            bad[m] = wrong
    assert not bad, f"depthlab.analysis loads what it must not: {bad}"


def test_only_the_probe_figures_module_touches_plots():
    """The probe's figures use depthlab.plots in one module, so a change of plots' API is a
    change there only."""
    users = sorted(m for m in modules() if _under(m, "depthlab.probe")
                   and any(_under(t, "depthlab.plots") for t in graph()[m]))
    assert users == ["depthlab.probe.figures"]


def test_rundir_imports_nothing_of_depthlab_nor_torch_matplotlib_or_hydra():
    """depthlab.rundir is at the bottom of both chains of DESIGN.md (train -> ... -> rundir,
    report -> plots -> analysis -> rundir): every part may use it, so it uses none."""
    inside, outside = _imports("depthlab.rundir")
    assert not inside, f"depthlab.rundir imports {sorted(inside)}"
    assert not outside & {"torch", "matplotlib", "hydra", "omegaconf", "numpy", "pandas"}
