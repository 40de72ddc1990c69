"""What importing analysis, plots and report pulls in and changes (#19: one home per concept).

depthlab.analysis reads run directories only: no torch, no matplotlib, and it imports
neither plots nor report (not even inside a function). Importing depthlab.plots changes
no matplotlib setting; its style lives in `plots.style()`. The gradient heatmap has one
renderer, in plots.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import depthlab

PACKAGE = Path(depthlab.__file__).resolve().parent


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()


def imported_names(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (top level and inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_importing_analysis_loads_neither_torch_nor_matplotlib():
    code = ("import sys, depthlab.analysis; "
            "print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))")
    assert run_python(code) == "[]"


def test_analysis_source_imports_no_plots_report_matplotlib_or_torch():
    files = sorted((PACKAGE / "analysis").rglob("*.py"))
    assert files and not (PACKAGE / "analysis.py").exists()
    for path in files:
        bad = sorted(n for n in imported_names(path)
                     if n.split(".")[0] in ("torch", "matplotlib")
                     or n.startswith(("depthlab.plots", "depthlab.report")))
        assert not bad, f"{path.relative_to(PACKAGE.parent)} imports {bad}"


def test_plots_imports_analysis_but_not_report():
    names = imported_names(PACKAGE / "plots.py")
    assert "depthlab.analysis" in names
    assert not any(n.startswith("depthlab.report") for n in names)


def test_importing_plots_and_report_changes_no_matplotlib_setting():
    code = ("import sys, matplotlib; before = matplotlib.rcParams.copy(); "
            "import depthlab.plots, depthlab.report; "
            "print(matplotlib.rcParams.copy() == before, 'matplotlib.pyplot' in sys.modules, "
            "'torch' in sys.modules)")
    assert run_python(code) == "True False False"


def test_style_applies_inside_and_restores_on_leaving():
    import matplotlib

    from depthlab import plots

    before = matplotlib.rcParams.copy()
    with plots.style():
        fig, ax = plots.subplots()
        assert not ax.spines["top"].get_visible()  # the house style: no top spine
        assert all(matplotlib.rcParams[k] == v for k, v in plots.STYLE.items())
    assert matplotlib.rcParams.copy() == before
    fig, ax = plots.subplots()
    assert ax.spines["top"].get_visible() == before["axes.spines.top"]


def test_one_gradient_heatmap_renderer():
    """Only plots draws images of arrays; the W&B sink draws its heatmap through plots."""
    drawers = ("imshow", "pcolormesh", "pcolor", "matshow")
    for path in sorted(PACKAGE.rglob("*.py")):
        calls = {node.func.attr for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                 if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                 and node.func.attr in drawers}
        if path != PACKAGE / "plots.py":
            assert not calls, f"{path.relative_to(PACKAGE.parent)} draws {sorted(calls)}"
    sink = imported_names(PACKAGE / "tracking" / "wandb_sink.py")
    assert "depthlab.plots.gradflow_heatmap_pixels" in sink
    assert not any(n.split(".")[0] == "matplotlib" for n in sink)
