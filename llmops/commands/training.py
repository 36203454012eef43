"""`llmops` subcommands for fine-tuning."""

import typer


def register(app: typer.Typer) -> None:
    """Add this area's subcommands to the `llmops` app."""
