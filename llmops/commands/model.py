"""`llmops` subcommands for the model area: evaluate, explain, promote, rollback, and `run` (the
main job).

Flows are imported inside the commands so that `llmops --help` stays fast.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from llmops.commands import Profile, one_line_errors, run_flow, start_flow_server
from llmops.home import home_path, project_home

if TYPE_CHECKING:
    from llmops.outputs import PromotionDecision


def register(app: typer.Typer) -> None:
    """Add this area's subcommands to the `llmops` app."""
    app.command(name="evaluate")(evaluate_command)
    app.command(name="explain")(explain_command)
    app.command(name="promote")(promote_command)
    app.command(name="rollback")(rollback_command)
    app.command(name="run")(run_command)


def evaluate_command(
    dataset: Annotated[str, typer.Option(help="URI of a prepared dataset (its folder).")],
    adapter: Annotated[
        str, typer.Option(help="URI of the candidate adapter: runs:/<id>/adapter, s3://, a folder.")
    ],
    profile: Profile = "cpu",
    base_model: Annotated[
        str | None, typer.Option(help="Base model the adapter was trained on.")
    ] = None,
    max_examples: Annotated[
        int | None, typer.Option(help="Evaluate only the first N held-out examples.")
    ] = None,
) -> None:
    """Compare a candidate adapter with the base model and the current champion."""
    from flows.evaluate import evaluate
    from llmops.flow_configs import EvaluateConfig

    config = EvaluateConfig.from_profile(
        profile,
        dataset=dataset,
        adapter=adapter,
        base_model=base_model,
        max_examples=max_examples,
    )
    report = run_flow(evaluate, config)
    typer.echo(report.model_dump_json(indent=2))
    typer.echo(f"\nPromote it with: llmops promote --evaluation-run {report.run_id}")


def explain_command(
    run_id: Annotated[str, typer.Argument(help="Evaluation run id (printed by `evaluate`).")],
    record_id: Annotated[str, typer.Argument(help="A record id of the evaluated eval split.")],
    answer: Annotated[
        Literal["reference", "candidate"],
        typer.Option(help="Score the reference answer or the candidate's own answer."),
    ] = "reference",
    neighbours: Annotated[int, typer.Option(min=1, help="Nearest training examples shown.")] = 5,
    output: Annotated[
        Path | None,
        typer.Option(help="HTML file to write (default: <home>/explain/<run>/<record>.html)."),
    ] = None,
    store_url: Annotated[
        str | None, typer.Option("--store", help="Store holding the evaluation report.")
    ] = None,
) -> None:
    """Show where the fine-tune changed its mind on one evaluated example, and the training
    examples nearest to its prompt."""
    from llmops import store
    from llmops.model.explain import explain_record, shorten
    from llmops.outputs import EvaluationReport
    from tasks.evaluation import report_uri

    with one_line_errors():
        where = report_uri(store.store_root(store_url), run_id)
        if not store.exists(where):
            raise FileNotFoundError(f"no evaluation report for run {run_id} at {where}")
        report = EvaluationReport.model_validate(store.read_json(where))
        explained = explain_record(report, record_id, answer, neighbours)
    path = output or home_path("explain", run_id, f"{record_id}.html")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(explained.html)
    deltas = [t.delta for t in explained.tokens]
    typer.echo(f"record {record_id}: {shorten(explained.prompt)}")
    typer.echo(
        f"{answer} answer, {len(deltas)} tokens: mean Δ log p {sum(deltas) / len(deltas):+.3f} "
        "(candidate - base; > 0: the fine-tune made the answer more likely)"
    )
    typer.echo("tokens changed most:")
    for token in sorted(explained.tokens, key=lambda t: -abs(t.delta))[:5]:
        typer.echo(
            f"  {token.text!r:<16} Δ {token.delta:+.3f} (candidate {token.candidate:.3f}, "
            f"base {token.base:.3f})"
        )
    typer.echo("nearest training examples:")
    for n in explained.neighbours:
        typer.echo(f"  {n.record_id:<12} cosine {n.similarity:.3f}  {shorten(n.prompt, 60)}")
    typer.echo(f"token view: {path}")


def promote_command(
    evaluation_run: Annotated[str, typer.Option(help="MLflow run id printed by `evaluate`.")],
    profile: Profile = "cpu",
    require_approval: Annotated[
        bool | None,
        typer.Option(
            "--require-approval/--no-approval",
            help="Pause for an operator's approval in the Prefect UI (needs a Prefect server).",
        ),
    ] = None,
) -> None:
    """Register an evaluated candidate; make it champion if it passes the gate."""
    from flows.promote import promote
    from llmops.flow_configs import PromoteConfig

    config = PromoteConfig.from_profile(
        profile, evaluation_run_id=evaluation_run, require_approval=require_approval
    )
    result = run_flow(promote, config)
    _echo_decision(result)


def rollback_command(
    profile: Profile = "cpu",
    registered_model: Annotated[
        str | None, typer.Option(help="Registered model name (default: the profile's).")
    ] = None,
) -> None:
    """Make the previous champion the champion again."""
    from flows.rollback import rollback
    from llmops.flow_configs import RollbackConfig

    result = run_flow(
        rollback, RollbackConfig.from_profile(profile, registered_model=registered_model)
    )
    typer.echo(
        f"{result['registered_model']}: v{result['rolled_back']} rolled back, "
        f"v{result['champion']} is champion again."
    )


def run_command(profile: Profile = "cpu") -> None:
    """The main job: prepare the bundled sample data, fine-tune, evaluate, gate and promote."""
    server_started = start_flow_server()
    from flows.training_pipeline import training_pipeline
    from llmops.flow_configs import TrainingPipelineConfig

    config = TrainingPipelineConfig.from_profile(profile)
    server_started()
    result = run_flow(training_pipeline, config)
    evaluation = result.evaluation
    candidate, base = evaluation.metrics["candidate"], evaluation.metrics["base"]
    home = project_home()
    typer.echo("\n=== training pipeline finished ===")
    typer.echo(f"dataset:          {result.dataset.dataset_id} ({result.dataset.uri})")
    typer.echo(f"training run:     {result.trained.training_run_id}")
    typer.echo(f"evaluation run:   {evaluation.run_id}")
    typer.echo("candidate vs base (mean, candidate - base [CI]):")
    for metric, ci in evaluation.intervals["base"].items():
        typer.echo(
            f"  {metric:<22} {candidate[metric]:9.4f} vs {base[metric]:9.4f}"
            f"   {ci.diff:+.4f} [{ci.low:+.4f}, {ci.high:+.4f}]"
        )
    _echo_decision(result.decision)
    typer.echo(
        "\nSee it in the UIs (Prefect http://127.0.0.1:4200, MLflow http://127.0.0.1:5000):\n"
        f"  LLMOPS_HOME={home} .venv/bin/llmops up      # and `llmops down` to stop them"
    )


def _echo_decision(decision: "PromotionDecision") -> None:
    typer.echo(f"model version:    {decision.registered_model} v{decision.version}")
    typer.echo(f"gate decision:    {decision.headline} (compared with the {decision.compared_to})")
    for reason in decision.reasons:
        typer.echo(f"  - {reason}")
