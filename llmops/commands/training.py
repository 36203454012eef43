"""`llmops` subcommands for fine-tuning.

The flow is imported inside the command so that `llmops --help` stays fast.
"""

import json
from pathlib import Path
from typing import Annotated

import typer

# One shared way to run a flow in-process and turn bad input into a one-line error.
from llmops.commands import Profile, run_flow


def register(app: typer.Typer) -> None:
    """Add this area's subcommands to the `llmops` app."""
    app.command(name="finetune")(finetune_command)


def finetune_command(
    dataset: Annotated[
        Path, typer.Argument(help="Prepared dataset folder (has manifest.json) or a Parquet file.")
    ],
    profile: Profile = "cpu",
    base_model: Annotated[
        str | None,
        typer.Option(help="smollm2-135m-instruct, tiny-random, a local dir or a hub id."),
    ] = None,
    max_steps: Annotated[int | None, typer.Option(help="Optimizer steps to train.")] = None,
    packing: Annotated[
        bool | None,
        typer.Option("--packing/--no-packing", help="Padding-free packed batches or padding."),
    ] = None,
) -> None:
    """Train a LoRA adapter; a killed run resumes, a finished one is reused."""
    from flows.finetune import FinetuneConfig, finetune

    config = FinetuneConfig.from_profile(
        profile, dataset=str(dataset), base_model=base_model, max_steps=max_steps, packing=packing
    )
    result = run_flow(finetune, config)
    typer.echo(json.dumps(result, indent=2, default=str))
    typer.echo(
        f"\nEvaluate it with: llmops evaluate --dataset {dataset} --adapter {result['adapter_dir']}"
    )
