"""Koppel's command line: one Typer app, one sub-command per job a user or operator does."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Koppel: keeps Parts Pim and AccountView in sync.")


@app.callback()
def main() -> None:
    """Koppel: keeps Parts Pim and AccountView in sync."""
