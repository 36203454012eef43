"""`llmops up` / `llmops down` (the stack: Prefect server, MLflow server, workers) and
`llmops worker` (a worker on another host of a team's stack)."""

import os
import socket
import sys
from typing import Annotated

import typer

from llmops import stack


def register(app: typer.Typer) -> None:
    """Add this area's subcommands to the `llmops` app."""
    app.command("up")(up_command)
    app.command("down")(down_command)
    app.command("worker")(worker_command)


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
    team: Annotated[
        bool,
        typer.Option(
            "--team",
            help="The team stack: Prefect and MLflow on PostgreSQL, MLflow artifacts and Prefect "
            "results in $LLMOPS_STORE, for workers on other hosts.",
        ),
    ] = False,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="With --team: a PostgreSQL server (postgresql://user:password@host:port) to "
            "hold the prefect and mlflow databases. Default: a cluster of the stack's own."
        ),
    ] = None,
    postgres_port: Annotated[
        int, typer.Option(help="With --team and no --database-url: port of the own cluster.")
    ] = 5433,
    host: Annotated[
        str,
        typer.Option(help="Interface the servers listen on (0.0.0.0: reachable by other hosts)."),
    ] = stack.HOST,
    workers: Annotated[
        bool,
        typer.Option("--workers/--no-workers", help="Start a worker for each pool here too."),
    ] = True,
) -> None:
    """Start the stack and register everything; safe to run twice (what already runs is kept).

    Laptop (default): a Prefect server and the MLflow server on SQLite in the project home, a
    process worker for each work pool (cpu, gpu), the work pools (infra/pools.sh), every
    deployment of prefect.yaml and the automations of deployments/automations.yaml, all on
    127.0.0.1.

    Team (--team): the same on PostgreSQL, with MLflow artifacts proxied into the store
    ($LLMOPS_STORE/mlflow) and Prefect results kept there, so a GPU box joins with
    `llmops worker --pool gpu` and three settings. See README, "Team set-up".

    Stop it with `llmops down`. Logs: <home>/stack/logs/.
    """
    if database_url and not team:
        typer.echo("error: --database-url is for the team stack: add --team", err=True)
        raise typer.Exit(1)
    requested = stack.StackState(
        prefect_port=prefect_port,
        mlflow_port=mlflow_port,
        profile=profile,
        team=team,
        bind=host,
        database_url=database_url,
        postgres_port=postgres_port,
        store=os.environ.get(stack.STORE_ENV),
        workers=workers,
    )
    if team and requested.store is None:
        typer.echo(
            "warning: no LLMOPS_STORE set: the store is this project home, so only workers "
            "sharing this disk can take part",
            err=True,
        )
    try:
        state = stack.up(requested, report=typer.echo)
    except (stack.StackError, stack.postgres.PostgresUnavailableError) as error:
        typer.echo(f"error: {error}", err=True)
        typer.echo("what did start is recorded: `llmops down` stops it", err=True)
        raise typer.Exit(1) from error
    typer.echo(f"\nPrefect UI: {state.prefect_url}\nMLflow UI:  {state.mlflow_url}")
    typer.echo("llmops commands in this project home now run their flows through it;")
    typer.echo(f"for the prefect CLI: export PREFECT_API_URL={state.prefect_url}/api")
    if state.team:
        typer.echo(
            "a worker on another host: PREFECT_API_URL=http://<this host>:"
            f"{state.prefect_port}/api MLFLOW_TRACKING_URI=http://<this host>:"
            f"{state.mlflow_port} LLMOPS_STORE={state.store or '<a shared store>'} "
            "llmops worker --pool gpu"
        )


def down_command() -> None:
    """Stop exactly what `llmops up` started (workers, MLflow server, Prefect server, and the
    stack's own PostgreSQL)."""
    stack.down(report=typer.echo)


def worker_command(
    pool: Annotated[str, typer.Option(help="Work pool to take runs from: cpu or gpu.")],
    name: Annotated[
        str | None, typer.Option(help="Worker name (default: <hostname>-<pool>).")
    ] = None,
) -> None:
    """Run a worker for POOL on this host, for a team's Prefect server, until stopped.

    It needs three settings, from the environment: PREFECT_API_URL (the team's Prefect API),
    MLFLOW_TRACKING_URI (the team's MLflow server) and LLMOPS_STORE (the shared store, e.g.
    s3://bucket/llmops, with the AWS_* variables for access). Flow runs it starts send
    heartbeats, so a run whose worker dies is put back in the queue for another worker.
    """
    missing = [
        f"{var} ({why})"
        for var, why in (
            ("PREFECT_API_URL", "the team's Prefect API, http://host:4200/api"),
            ("LLMOPS_STORE", "the shared store, e.g. s3://bucket/llmops"),
        )
        if not os.environ.get(var)
    ]
    if not os.environ.get("MLFLOW_TRACKING_URI", "").startswith(("http://", "https://")):
        missing.append("MLFLOW_TRACKING_URI (the team's MLflow server, http://host:5000)")
    if missing:
        typer.echo("error: set " + "; ".join(missing), err=True)
        raise typer.Exit(1)
    env = {
        **os.environ,
        "LLMOPS_PROJECT_DIR": str(stack.REPO),
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": stack.HEARTBEAT_SECONDS,
    }
    argv = stack.worker_command(pool, name or f"{socket.gethostname()}-{pool}")
    sys.stdout.flush()
    # exec: the worker is this process, so signals (Ctrl-C, SIGTERM) reach it directly.
    os.execve(argv[0], argv, env)
