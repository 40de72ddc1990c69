"""The `depthlab` command: one module per subcommand, joined here."""

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


def main() -> None:
    app()
