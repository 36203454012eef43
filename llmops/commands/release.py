"""`llmops release start|status|stop`: a live release of the challenger, decided by the
`release` flow (the `release-watch` deployment, or `start --watch` on a laptop)."""

import time
from typing import TYPE_CHECKING, Annotated

import typer

from llmops.commands import Profile, one_line_errors, run_flow

if TYPE_CHECKING:
    from llmops.flow_configs import ReleaseConfig

release = typer.Typer(
    help="Live releases of the challenger: a canary (a share of users) or a shadow (copies of "
    "every request), watched by the release flow, which promotes it on positive feedback, "
    "rejects it, or rolls it back at once on errors or slow answers.",
    epilog="Example: llmops release start --mode canary --share 0.2 --watch; "
    "llmops release status; llmops release stop --reason 'manual'.",
    no_args_is_help=True,
)
RegisteredModel = Annotated[
    str | None, typer.Option(help="Registered model name (default: the profile's).")
]


def register(app: typer.Typer) -> None:
    """Add this area's subcommands to the `llmops` app."""
    app.add_typer(release, name="release")


@release.command("start")
def start(
    profile: Profile = "cpu",
    mode: Annotated[str | None, typer.Option(help="canary or shadow.")] = None,
    share: Annotated[float | None, typer.Option(help="Canary: the share of users (0-1).")] = None,
    registered_model: RegisteredModel = None,
    watch: Annotated[
        bool, typer.Option(help="Evaluate every interval here until the release is decided.")
    ] = False,
) -> None:
    """Start a release of the `challenger` version against the champion."""
    from llmops.flow_configs import ReleaseConfig
    from tasks.release import start_release

    with one_line_errors():
        config = ReleaseConfig.from_profile(
            profile, mode=mode, share=share, registered_model=registered_model
        )
        started = start_release(config.registered_model, config.mode, config.share)
    share_text = f" to {started.share:.0%} of users" if started.mode == "canary" else ""
    typer.echo(
        f"{started.model}: {started.mode} release of v{started.version}{share_text}, against "
        f"champion v{started.champion_version}"
    )
    if watch:
        _watch(config)


@release.command("status")
def status(profile: Profile = "cpu", registered_model: RegisteredModel = None) -> None:
    """Print the release, its live evidence, and what the rule says now."""
    from datetime import UTC, datetime

    from llmops.flow_configs import ReleaseConfig
    from llmops.release import read_release
    from llmops.release_rule import decide_release, gather_evidence
    from llmops.serving.store import InferenceStore
    from tasks.release import evidence_table

    config = ReleaseConfig.from_profile(profile, registered_model=registered_model)
    current = read_release(config.registered_model)
    if current is None:
        typer.echo(f"{config.registered_model} has never had a release")
        return
    typer.echo(current.model_dump_json(indent=2))
    log = InferenceStore(config.inference_log_url())
    evidence = gather_evidence(log.read_requests(), log.read_feedback(), current, datetime.now(UTC))
    typer.echo("\n".join(evidence_table(evidence)))
    if current.running:
        verdict = decide_release(config.rule, evidence, current.mode)
        typer.echo(f"rule now: {verdict.state}: {'; '.join(verdict.reasons)}")


@release.command("stop")
def stop(
    profile: Profile = "cpu",
    registered_model: RegisteredModel = None,
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit trail).")] = "stopped "
    "by an operator",
) -> None:
    """End the running release; the champion stays."""
    from llmops.flow_configs import ReleaseConfig
    from tasks.release import stop_release

    config = ReleaseConfig.from_profile(profile, registered_model=registered_model)
    with one_line_errors():
        stopped = stop_release(config.registered_model, reason)
    typer.echo(f"{stopped.model}: release of v{stopped.version} stopped; the champion stays")


def _watch(config: "ReleaseConfig") -> None:
    """Run the release flow every evaluation interval until it decides (the laptop's stand-in
    for the release-watch deployment's schedule)."""
    from flows.release import release as release_flow

    while True:
        outcome = run_flow(release_flow, config)
        if outcome.state != "running":
            typer.echo(f"release {outcome.state}: {'; '.join(outcome.reasons)}")
            return
        time.sleep(config.evaluation_interval_s)
