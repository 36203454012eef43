"""`llmops` subcommands for data preparation."""

from pathlib import Path
from typing import Annotated

import typer

from llmops.commands import Profile, run_flow


def register(app: typer.Typer) -> None:
    """Add this area's subcommands to the `llmops` app."""
    app.command("prepare")(prepare_command)


def prepare_command(
    sources: Annotated[
        list[str] | None,
        typer.Argument(help="Files, folders, globs or s3:// URLs (default: the bundled sample)."),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            help="Dataset root, local or s3:// (default <store>/datasets); the dataset goes "
            "to <output>/<dataset_id>/."
        ),
    ] = None,
    contract: Annotated[Path | None, typer.Option(help="Data contract YAML.")] = None,
    dask_address: Annotated[
        str | None,
        typer.Option(
            help="Run the shard tasks on Dask: a scheduler address (tcp://host:8786) or "
            "'local' for a cluster on this host (default: threads in this process)."
        ),
    ] = None,
    profile: Profile = "cpu",
) -> None:
    """Ingest, validate against the data contract, redact PII, deduplicate, split and version.

    Prints the counts (total = accepted + every rejection reason) and the
    dataset folder. Exits non-zero only when the source cannot be read or the contract's
    tolerance is exceeded.
    """
    from flows.prepare import prepare
    from llmops.flow_configs import PrepareConfig

    config = PrepareConfig.from_profile(
        profile,
        sources=sources or None,
        output=output,
        contract=str(contract) if contract else None,
        dask_address=dask_address,
    )
    dataset = run_flow(prepare, config)
    typer.echo(f"dataset {dataset.dataset_id} -> {dataset.uri}")
    for name, value in dataset.counts.items():
        typer.echo(f"  {name:>27}: {value}")
    if dataset.eda_report:
        typer.echo(f"exploration (EDA report): {dataset.eda_report}")
