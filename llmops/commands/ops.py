"""`llmops` subcommands for orchestration."""

from typing import Annotated

import typer

from llmops.commands import Profile, run_flow


def register(app: typer.Typer) -> None:
    """Add this area's subcommands to the `llmops` app."""
    app.command("watch")(watch_command)
    app.command("retrain")(retrain_command)


def watch_command(
    landing: Annotated[
        str | None, typer.Argument(help="Folder or s3:// prefix where new data lands.")
    ] = None,
    profile: Profile = "cpu",
) -> None:
    """Announce new or changed files in the landing zone as `llmops.dataset.landed` events.

    Run it once here, or deploy `watch-landing` (prefect.yaml) to run it every minute.
    """
    from flows.watch import watch
    from llmops.flow_configs import WatchConfig

    new_files = run_flow(watch, WatchConfig.from_profile(profile, landing=landing))
    for path in new_files:
        typer.echo(f"landed: {path}")


def retrain_command(
    new_data: Annotated[
        list[str] | None, typer.Argument(help="Newly landed files or prefixes to add.")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why this run happens (names the run).")] = "manual",
    profile: Profile = "cpu",
) -> None:
    """Retrain: export feedback, then run the training pipeline on base + new data + feedback.

    This is what the `retrain` deployment's schedule and event triggers run.
    """
    from flows.retrain import retrain
    from llmops.flow_configs import RetrainConfig

    config = RetrainConfig.from_profile(profile, reason=reason, new_data=new_data or None)
    result = run_flow(retrain, config)
    decision = result.decision
    typer.echo(
        f"dataset {result.dataset.dataset_id}: {decision.registered_model} "
        f"v{decision.version}, {decision.verdict}"
    )
