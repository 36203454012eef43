"""`llmops new-flow` and `llmops run-flow`: scaffold a flow, then run any flow by name."""

import importlib
import json
from pathlib import Path
from typing import Annotated, Literal

import typer

from llmops import scaffold
from llmops.commands import Profile, run_flow
from llmops.config import flow_config_class


def register(app: typer.Typer) -> None:
    """Add this area's subcommands to the `llmops` app."""
    app.command("new-flow")(new_flow_command)
    app.command("run-flow")(run_flow_command)


def new_flow_command(
    name: Annotated[str, typer.Argument(help="snake_case name, e.g. partner_feed_check.")],
    pool: Annotated[
        Literal["cpu", "gpu"], typer.Option(help="Work pool its deployment runs on.")
    ] = "cpu",
    project_dir: Annotated[
        Path, typer.Option(help="Project to add it to (default: this checkout).")
    ] = scaffold.REPO,
) -> None:
    """Scaffold a flow: flows/NAME.py (config model + flow built from tasks/ and a data
    contract), profiles/NAME/{tiny,cpu,gpu}.yaml, tests/flows/test_NAME.py (passes as is) and
    its deployment (deployments/authored.yaml, rendered into prefect.yaml).

    Then see docs/authoring-flows.md.
    """
    try:
        written = scaffold.scaffold_flow(name, pool, project_dir.resolve())
    except (ValueError, FileExistsError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo(f"\nnext: .venv/bin/python -m pytest tests/flows/test_{name}.py")
    typer.echo(f"      .venv/bin/llmops run-flow {name} --profile cpu")


def run_flow_command(
    name: Annotated[str, typer.Argument(help="A module of flows/, e.g. partner_feed_check.")],
    profile: Profile = "cpu",
) -> None:
    """Run flows/NAME.py's flow here (ephemeral Prefect) with profiles/NAME/PROFILE.yaml and
    print what it returns. Made for flows scaffolded by `llmops new-flow`."""
    # Imported here, not at the top, so `llmops --help` does not load Prefect.
    from prefect import Flow

    try:
        module = importlib.import_module(f"flows.{name}")
        flow_fn = getattr(module, name, None)
        if not isinstance(flow_fn, Flow):
            raise LookupError(f"flows/{name}.py has no flow function named {name!r}")
        config = flow_config_class(module).from_profile(profile)
    except (ModuleNotFoundError, LookupError, FileNotFoundError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    result = run_flow(flow_fn, config)
    typer.echo(json.dumps(result, indent=2, default=str))
