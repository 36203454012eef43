"""`llmops` subcommands for orchestration."""

from typing import Annotated

import typer

from llmops.commands import Profile, run_flow


def register(app: typer.Typer) -> None:
    """Add this area's subcommands to the `llmops` app."""
    app.command("watch")(watch_command)


def watch_command(
    landing: Annotated[
        str | None, typer.Argument(help="Folder or s3:// prefix where new data lands.")
    ] = None,
    profile: Profile = "cpu",
) -> None:
    """Announce new or changed files in the landing zone as `llmops.dataset.landed` events.

    Run it once here, or deploy `watch-landing` (prefect.yaml) to run it every minute.
    """
    from flows.watch import WatchConfig, watch

    new_files = run_flow(watch, WatchConfig.from_profile(profile, landing=landing))
    for path in new_files:
        typer.echo(f"landed: {path}")
