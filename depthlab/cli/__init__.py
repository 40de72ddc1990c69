"""depthlab: why do deep plain nets train worse, and what do skip connections change?

Train plain, residual and dense CNNs at increasing depth, record per-layer
gradient flow, and compare them.

  depthlab compare plain residual data.train_subset=5000 trainer.epochs=3
  depthlab sweep depth=20,32,44,56 arch=plain,residual arch.layout=cifar
  depthlab report runs/<sweep>
  depthlab dashboard runs/<sweep>
  depthlab probe
  depthlab lesion runs/<sweep>/residual-56-s0 runs/<sweep>/plain-56-s0
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help=__doc__,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)

# One module per command; each defines register(app). Listed in help order.
COMMANDS = ["train", "sweep", "compare", "report", "dashboard", "probe", "lesion", "archs"]

for _name in COMMANDS:
    importlib.import_module(f"depthlab.cli.{_name}").register(app)


def main() -> None:
    app()
