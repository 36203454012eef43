"""Prefect tasks of a live release: read the release and its traffic, apply the rule, end the
release under the model's lock (promoting on a pass), publish and announce the decision."""

from datetime import UTC, datetime

import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event

from llmops.governance import audit
from llmops.model import registry
from llmops.release import Mode, Release, ended, open_release, read_release, write_release
from llmops.release_rule import (
    ReleaseEvidence,
    ReleaseOutcome,
    ReleasePolicy,
    RuleVerdict,
    VariantEvidence,
    decide_release,
    describe_rule,
    gather_evidence,
)
from llmops.serving.store import InferenceStore
from tasks.policy import STORE_RETRIES
from tasks.registry import registry_lock


@task(**STORE_RETRIES)
def load_release(registered_model: str) -> Release | None:
    """The model's latest release from the registry (running or ended), or None."""
    return read_release(registered_model)


@task(**STORE_RETRIES)
def load_release_traffic(inference_log: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every logged request and feedback (the rule keeps those since the release started)."""
    log = InferenceStore(inference_log)
    return log.read_requests(), log.read_feedback()


@task
def measure_release(
    requests: pd.DataFrame, feedback: pd.DataFrame, release: Release
) -> ReleaseEvidence:
    """Each variant's evidence since the release started."""
    return gather_evidence(requests, feedback, release, datetime.now(UTC))


@task
def judge_release(
    policy: ReleasePolicy, evidence: ReleaseEvidence, release: Release
) -> RuleVerdict:
    """The rule's verdict on the evidence: keep running, or how the release ends."""
    return decide_release(policy, evidence, release.mode)


@task
def save_release_decision(
    release: Release, verdict: RuleVerdict, evidence: ReleaseEvidence
) -> ReleaseOutcome:
    """Under the model's lock: end the release as the verdict says, promoting the challenger
    on a pass unless the champion moved since the release started (then it is stale and
    rejected); tag the version and audit. A release ended meanwhile is left as it is."""
    model, version = release.model, release.version
    with registry_lock(model):
        current = read_release(model)
        if current is None or not current.running or current.started_at != release.started_at:
            state = current.state if current else "none"
            return _outcome(release, "none", [f"the release already ended ({state})"], evidence)
        state, reasons, previous = verdict.state, list(verdict.reasons), None
        if state == "promoted":
            champion_now = registry.alias_version(model, registry.CHAMPION)
            if champion_now != release.champion_version:
                state = "rejected"
                reasons.append(
                    f"stale: the champion is now v{champion_now}, not v{release.champion_version} "
                    "it was compared with"
                )
            else:
                previous = registry.promote_version(model, version)
        closed = write_release(ended(current, state, "; ".join(reasons)))
        registry.tag_version(
            model, version, {"release_decision": state, "release_reasons": "; ".join(reasons)}
        )
        audit.record(f"release.{state}", "; ".join(reasons), model, version)
    return _outcome(closed, state, reasons, evidence, verdict.probability, previous)


@task
def publish_release_decision(outcome: ReleaseOutcome, policy: ReleasePolicy) -> str:
    """Create the `release-decision` markdown artifact: the verdict, the evidence, the rule."""
    markdown = describe_outcome(outcome, policy)
    create_markdown_artifact(markdown, key="release-decision")
    return markdown


@task
def emit_release_decided(outcome: ReleaseOutcome, policy: ReleasePolicy) -> None:
    """Emit llmops.release.decided with the decision, the rule and the evidence."""
    emit_event(
        event="llmops.release.decided",
        resource={"prefect.resource.id": f"llmops.model.{outcome.registered_model}"},
        payload={
            "version": outcome.version,
            "champion_version": outcome.champion_version,
            "decision": outcome.state,
            "reasons": outcome.reasons,
            "probability": outcome.probability,
            "rule": describe_rule(policy),
            "evidence": outcome.evidence.model_dump(mode="json") if outcome.evidence else None,
        },
    )


def start_release(registered_model: str, mode: Mode, share: float) -> Release:
    """Under the model's lock, start a release of the `challenger` alias against the champion;
    clear errors when there is no challenger, it is the champion, or a release is running."""
    with registry_lock(registered_model):
        challenger = registry.alias_version(registered_model, registry.CHALLENGER)
        if challenger is None:
            raise LookupError(
                f"{registered_model} has no challenger: register one (`llmops promote`) first"
            )
        champion = registry.alias_version(registered_model, registry.CHAMPION)
        release = open_release(registered_model, challenger, champion, mode, share)
        what = f"{mode} release of v{challenger} against champion v{champion}"
        audit.record("release.started", what, registered_model, challenger)
    return release


def stop_release(registered_model: str, reason: str) -> Release:
    """Under the model's lock, end the running release as stopped (the champion stays)."""
    with registry_lock(registered_model):
        current = read_release(registered_model)
        if current is None or not current.running:
            raise LookupError(f"no release is running on {registered_model}")
        closed = write_release(ended(current, "stopped", reason))
        audit.record("release.stopped", reason, registered_model, current.version)
    return closed


def describe_outcome(outcome: ReleaseOutcome, policy: ReleasePolicy) -> str:
    """The outcome in markdown: headline, reasons, the evidence table and the rule."""
    lines = [
        f"# {outcome.registered_model} v{outcome.version}: release {outcome.state.upper()}",
        "",
        f"{outcome.mode} release against champion v{outcome.champion_version}.",
        "",
        *[f"- {reason}" for reason in outcome.reasons],
    ]
    if outcome.previous_champion:
        lines += [
            "",
            f"Previous champion v{outcome.previous_champion} kept as `previous-champion`.",
        ]
    if outcome.evidence:
        lines += ["", *evidence_table(outcome.evidence)]
    return "\n".join([*lines, "", "## Rule", "", describe_rule(policy)])


def evidence_table(evidence: ReleaseEvidence) -> list[str]:
    """Both variants side by side, as markdown table rows."""
    rows = [
        "| variant | version | requests | errors | p50 ms | p95 ms | tokens | feedbacks "
        "| positive |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, variant in (("champion", evidence.champion), ("challenger", evidence.challenger)):
        rows.append(f"| {name} | v{variant.version} | {_cells(variant)} |")
    rows.append(f"\nElapsed: {evidence.elapsed_s:.0f} s since the release started.")
    return rows


def _cells(v: VariantEvidence) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    share = "-" if v.positive_share is None else f"{v.positive} ({v.positive_share:.0%})"
    return (
        f"{v.requests} | {v.errors} ({v.error_rate:.1%}) | {ms(v.latency_p50_ms)} | "
        f"{ms(v.latency_p95_ms)} | {v.completion_tokens} | {v.feedbacks} | {share}"
    )


def _outcome(
    release: Release,
    state: str,
    reasons: list[str],
    evidence: ReleaseEvidence | None,
    probability: float | None = None,
    previous: str | None = None,
) -> ReleaseOutcome:
    return ReleaseOutcome(
        registered_model=release.model,
        state=state,
        version=release.version,
        champion_version=release.champion_version,
        mode=release.mode,
        reasons=reasons,
        probability=probability,
        evidence=evidence,
        previous_champion=previous,
        ended_at=release.ended_at,
    )


def waiting_outcome(
    release: Release | None,
    registered_model: str,
    verdict: RuleVerdict | None = None,
    evidence: ReleaseEvidence | None = None,
) -> ReleaseOutcome:
    """The outcome of an evaluation that changed nothing: no release running, or still running."""
    if release is None or not release.running:
        return ReleaseOutcome(registered_model=registered_model, state="none")
    reasons = verdict.reasons if verdict else []
    probability = verdict.probability if verdict else None
    return _outcome(release, "running", reasons, evidence, probability)
