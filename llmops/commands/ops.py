"""`llmops` subcommands for the ops area."""

import typer


def register(app: typer.Typer) -> None:
    """Add this area's subcommands to the `llmops` app."""
