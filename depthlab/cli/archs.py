"""`depthlab archs`: the zoo at a glance."""

from __future__ import annotations

import typer
from rich.table import Table

from depthlab.cli.common import fail, out


def archs(
    layout: str = typer.Option(None, "--layout", help="Only this layout: cifar or imagenet."),
    flops: bool = typer.Option(True, "--flops/--no-flops", help="Count FLOPs (slower for deep nets)."),
) -> None:
    """Families, layouts, depth rules and depth -> parameters -> FLOPs for the common depths.

    Depth counts weighted layers on the main path as the papers do (ResNet-18 has 18).
    Parameters at 10 classes (cifar) or 1000 (imagenet); FLOPs per image, forward,
    counted by torch.utils.flop_counter (the papers' multiply-adds are half of it).

      depthlab archs --layout cifar
    """
    from depthlab.models import ARCHS, DEPTH_RULES, LAYOUTS, build_model, common_depths, describe

    if layout is not None and layout not in LAYOUTS:
        fail(f"unknown layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    rules = Table(title="Depth rules", title_justify="left")
    for col in ("family", "layout", "valid depths"):
        rules.add_column(col)
    for (arch, lay), rule in DEPTH_RULES.items():
        if layout in (None, lay):
            rules.add_row(arch, lay, rule)
    out.print(rules)
    sizes = Table(title="Common depths", title_justify="left")
    for col, just in (("family", "left"), ("layout", "left"), ("depth", "right"),
                      ("params", "right"), ("GFLOPs", "right"), ("input", "right")):
        sizes.add_column(col, justify=just)
    for lay in LAYOUTS:
        if layout not in (None, lay):
            continue
        for arch in ARCHS:
            for depth in common_depths(arch, lay):
                model = build_model(arch, depth, layout=lay, num_classes=1000 if lay == "imagenet" else 10)
                # tracing a 1000+ layer net takes seconds: its FLOPs are left out
                d = describe(model, flops=flops and depth <= 300)
                size = d["image_size"]
                sizes.add_row(arch, lay, str(depth), f"{d['params'] / 1e6:.2f}M",
                              f"{d['flops'] / 1e9:.3f}" if d["flops"] else "-", f"{size}x{size}")
    out.print(sizes)


def register(app: typer.Typer) -> None:
    app.command("archs")(archs)
