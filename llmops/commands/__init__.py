"""Subcommands of the `llmops` CLI, one module per area; each exposes `register(app)`."""

from typing import Annotated, Any

import typer

from llmops.errors import USER_ERRORS

Profile = Annotated[str, typer.Option(help="Settings profile: tiny, cpu or gpu.")]


def run_flow(flow_fn: Any, config: Any) -> Any:
    """Run a flow in-process; bad input becomes a one-line error and exit code 1."""
    try:
        return flow_fn(config)
    except USER_ERRORS as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
