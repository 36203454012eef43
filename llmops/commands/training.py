"""`llmops` subcommands for fine-tuning.

The flow is imported inside the command so that `llmops --help` stays fast.
"""

from typing import Annotated, Literal

import typer

# One shared way to run a flow in-process and turn bad input into a one-line error.
from llmops.commands import Profile, one_line_errors, run_flow


def register(app: typer.Typer) -> None:
    """Add this area's subcommands to the `llmops` app."""
    app.command(name="finetune")(finetune_command)


def finetune_command(
    dataset: Annotated[
        str,
        typer.Argument(
            help="URI of a prepared dataset: the folder `llmops prepare` printed (local or s3://)."
        ),
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
    method: Annotated[
        Literal["sft", "dpo"] | None,
        typer.Option(help="sft: supervised; dpo: preference tuning on the dataset's pairs."),
    ] = None,
    dpo_reference: Annotated[
        Literal["base", "champion"] | None,
        typer.Option(help="DPO: a delta on the base model or on the current champion."),
    ] = None,
) -> None:
    """Train a LoRA adapter (supervised, or DPO on preference pairs); a killed run resumes (on
    any host sharing the store), a finished one is reused."""
    from flows.finetune import finetune
    from llmops.flow_configs import FinetuneConfig

    with one_line_errors():  # e.g. --dpo-reference champion without --method dpo
        config = FinetuneConfig.from_profile(
            profile,
            dataset=dataset,
            base_model=base_model,
            max_steps=max_steps,
            packing=packing,
            method=method,
            dpo_reference=dpo_reference,
        )
    trained = run_flow(finetune, config)
    typer.echo(trained.model_dump_json(indent=2))
    typer.echo(
        f"\nEvaluate it with: llmops evaluate --dataset {trained.dataset_uri} "
        f"--adapter {trained.adapter_uri}"
    )
