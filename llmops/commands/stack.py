"""`llmops up` / `llmops down`: the local stack (Prefect server, MLflow server, workers)."""

from typing import Annotated

import typer

from llmops import stack


def register(app: typer.Typer) -> None:
    """Add this area's subcommands to the `llmops` app."""
    app.command("up")(up_command)
    app.command("down")(down_command)


def up_command(
    profile: Annotated[
        str | None,
        typer.Option(
            help="Deploy every flow with this profile's parameters (tiny: a quick trial). "
            "Default: each deployment's own (cpu; gpu for fine-tuning)."
        ),
    ] = None,
    prefect_port: Annotated[int, typer.Option(help="Port of the Prefect server and UI.")] = 4200,
    mlflow_port: Annotated[int, typer.Option(help="Port of the MLflow server and UI.")] = 5000,
) -> None:
    """Start the local stack on 127.0.0.1 and register everything; safe to run twice: a
    Prefect server (SQLite in the project home, Postgres when PREFECT_API_DATABASE_CONNECTION_URL
    says so), the MLflow server and UI on the project's SQLite store, a process worker for each
    work pool (cpu, gpu), the work pools (infra/pools.sh) and every deployment of prefect.yaml.
    What already runs is kept.

    Stop it with `llmops down`. Logs: <home>/stack/logs/.
    """
    try:
        state = stack.up(prefect_port, mlflow_port, profile, report=typer.echo)
    except stack.StackError as error:
        typer.echo(f"error: {error}", err=True)
        typer.echo("what did start is recorded: `llmops down` stops it", err=True)
        raise typer.Exit(1) from error
    typer.echo(f"\nPrefect UI: {state.prefect_url}\nMLflow UI:  {state.mlflow_url}")
    typer.echo("llmops commands in this project home now run their flows through it;")
    typer.echo(f"for the prefect CLI: export PREFECT_API_URL={state.prefect_url}/api")


def down_command() -> None:
    """Stop exactly what `llmops up` started (workers, MLflow server, Prefect server)."""
    stack.down(report=typer.echo)
