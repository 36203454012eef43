"""`llmops` subcommands for the serving area: serve, feedback export, monitor."""

import typer

PROFILE_HELP = "Profile under profiles/<flow>/ (tiny, cpu, gpu)."


def register(app: typer.Typer) -> None:
    """Add this area's subcommands to the `llmops` app."""
    app.command("serve")(serve)
    app.command("monitor")(monitor)
    feedback = typer.Typer(help="Human feedback collected by `llmops serve`.", no_args_is_help=True)
    feedback.command("export")(export)
    app.add_typer(feedback, name="feedback")


def serve(
    profile: str = typer.Option("cpu", help=PROFILE_HELP),
    host: str | None = typer.Option(None, help="Interface to bind."),
    port: int | None = typer.Option(None, help="TCP port."),
    registered_model: str | None = typer.Option(None, help="MLflow registered model to serve."),
    alias: str | None = typer.Option(None, help="Registry alias to serve (default champion)."),
    inference_log: str | None = typer.Option(None, help="Inference log folder or s3:// prefix."),
    no_api_key: bool = typer.Option(
        False, "--no-api-key", help="Accept requests without a key (local experiments only)."
    ),
    guardrails: str | None = typer.Option(
        None,
        help="Prompt screening policy: block (400), flag (answer and record) or off "
        "(default: the profile's).",
    ),
) -> None:
    """Serve the champion over an OpenAI-compatible API (key from $LLMOPS_API_KEY)."""
    from flows.serve import serve as serve_flow
    from llmops.flow_configs import ServeConfig

    config = ServeConfig.from_profile(
        profile,
        host=host,
        port=port,
        registered_model=registered_model,
        alias=alias,
        inference_log=inference_log,
        require_api_key=False if no_api_key else None,
    )
    if guardrails is not None:
        if guardrails not in ("block", "flag", "off"):
            raise typer.BadParameter("block, flag or off", param_hint="--guardrails")
        screening = config.guardrails.model_copy(update={"policy": guardrails})
        config = config.model_copy(update={"guardrails": screening})
    serve_flow(config)


def export(
    output: str = typer.Option(..., help="JSON Lines file to write the records or pairs to."),
    inference_log: str | None = typer.Option(
        None, help="Inference log folder or s3:// prefix (default <store>/inference)."
    ),
    min_score: float = typer.Option(
        1.0, min=0.0, max=1.0, help="Keep answers scored at least this (pairs: the chosen ones)."
    ),
    pairs: bool = typer.Option(
        False,
        "--pairs",
        help="Write preference pairs {id, messages, chosen, rejected}: a correction beats the "
        "answer it corrected; an up-rated answer beats a down-rated one to the same prompt.",
    ),
    max_rejected_score: float = typer.Option(
        0.0, min=0.0, max=1.0, help="With --pairs: answers scored at most this are rejected."
    ),
) -> None:
    """Turn corrected and rated answers into training records (or pairs) for `llmops prepare`."""
    from llmops import store
    from tasks.feedback import export_feedback, export_preference_pairs

    log = inference_log or store.join(store.store_root(), "inference")
    if pairs:
        if max_rejected_score >= min_score:
            raise typer.BadParameter("must be below --min-score", param_hint="--max-rejected-score")
        written = export_preference_pairs(log, output, min_score, max_rejected_score)
        typer.echo(f"wrote {written} preference pairs to {output}")
        return
    written = export_feedback(log, output, min_score)
    typer.echo(f"wrote {written} records to {output}")


def monitor(
    profile: str = typer.Option("cpu", help=PROFILE_HELP),
    reference_dataset: str | None = typer.Option(
        None, help="Prepared dataset folder the champion was trained on."
    ),
    registered_model: str | None = typer.Option(None, help="MLflow registered model."),
    inference_log: str | None = typer.Option(None, help="Inference log folder or s3:// prefix."),
) -> None:
    """Compare live traffic with the training data (Evidently); report drift."""
    from flows.monitor import monitor as monitor_flow
    from llmops.flow_configs import MonitorConfig

    config = MonitorConfig.from_profile(
        profile,
        reference_dataset=reference_dataset,
        registered_model=registered_model,
        inference_log=inference_log,
    )
    result = monitor_flow(config)
    typer.echo(f"drift detected: {result['drift_detected']}; report: {result['report_html']}")
