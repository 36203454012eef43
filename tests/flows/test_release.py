"""The release flow through the real Prefect server (harness) and MLflow on SQLite, with live
traffic simulated as rows in the inference log: a disliked challenger is rejected, a liked one
promoted, a failing one rolled back at the first evaluation after the breach, one without
evidence rejected when its budget is spent; and a gate pass with rollout=release starting a
release instead of promoting."""

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from release_support import register_versions, serve_traffic

from flows.release import release
from llmops.flow_configs import ReleaseConfig
from llmops.governance.audit import AuditLog
from llmops.model import registry
from llmops.model.gate import GateDecision
from llmops.outputs import EvaluationReport
from llmops.release import ReleasePlan, open_release, read_release
from llmops.release_rule import ReleaseOutcome
from tasks.registry import save_decision

pytestmark = pytest.mark.slow


@pytest.fixture
def log_root(tmp_path: Path, llmops_home: Path, prefect_harness: None) -> Path:
    return tmp_path / "inference"


def config_for(name: str, log_root: Path) -> ReleaseConfig:
    return ReleaseConfig.from_profile("tiny", registered_model=name, inference_log=str(log_root))


def decided_event(name: str) -> Any:
    """The llmops.release.decided event about `name`; events reach the server asynchronously."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter

    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            page = client.read_events(
                EventFilter(event=EventNameFilter(name=["llmops.release.decided"])), limit=50
            )
            found = [e for e in page.events if e.resource.id == f"llmops.model.{name}"]
            if found:
                return found[0]
            time.sleep(0.5)
    raise AssertionError(f"no llmops.release.decided event for {name}")


def start(name: str, versions: list[str]) -> None:
    open_release(name, versions[-1], versions[0], "canary", 0.5)


def test_a_disliked_challenger_is_rejected(log_root: Path) -> None:
    from prefect.artifacts import Artifact

    name = "release-disliked"
    versions = register_versions(name)
    start(name, versions)
    serve_traffic(log_root, "champion", versions[0], 20, liked=14, disliked=6)
    serve_traffic(log_root, "challenger", versions[1], 20, liked=3, disliked=15)

    outcome = release(config_for(name, log_root))

    assert outcome.state == "rejected", outcome.reasons
    assert outcome.probability is not None and outcome.probability <= 0.05
    assert registry.alias_version(name, registry.CHAMPION) == versions[0]
    ended = read_release(name)
    assert ended is not None and ended.state == "rejected" and ended.ended_at is not None
    event = decided_event(name)
    assert event.payload["decision"] == "rejected" and event.payload["version"] == versions[1]
    assert event.payload["evidence"]["challenger"]["positive"] == 3
    assert "Beta(1,1)" in event.payload["rule"]
    markdown = str(Artifact.get("release-decision").data)
    assert "release REJECTED" in markdown and "| challenger | v2 | 20 |" in markdown
    # Ended: the next scheduled evaluation does nothing.
    assert release(config_for(name, log_root)).state == "none"


def test_a_liked_challenger_is_promoted(log_root: Path) -> None:
    name = "release-liked"
    versions = register_versions(name)
    start(name, versions)
    serve_traffic(log_root, "champion", versions[0], 12, liked=5, disliked=4)
    serve_traffic(log_root, "challenger", versions[1], 12, liked=9, disliked=0)
    waiting = release(config_for(name, log_root))
    assert waiting.state == "running" and "waiting" in waiting.reasons[0]  # under 10 feedbacks

    serve_traffic(log_root, "champion", versions[0], 10, liked=3, disliked=6)
    serve_traffic(log_root, "challenger", versions[1], 10, liked=8, disliked=1)
    outcome = release(config_for(name, log_root))

    assert outcome.state == "promoted", outcome.reasons
    assert outcome.previous_champion == versions[0]
    assert registry.alias_version(name, registry.CHAMPION) == versions[1]
    assert registry.alias_version(name, registry.PREVIOUS_CHAMPION) == versions[0]
    actions = [(e.action, e.version) for e in AuditLog().entries(name)]
    assert actions == [("release.promoted", versions[1])]
    assert registry.version_tags(name, versions[1])["release_decision"] == "promoted"
    assert decided_event(name).payload["decision"] == "promoted"


def test_a_failing_challenger_is_rolled_back_within_one_interval(log_root: Path) -> None:
    """The watch loop evaluates every interval, as the release-watch schedule does, while the
    challenger starts failing part-way; the rollback comes at the first evaluation after."""
    name = "release-failing"
    versions = register_versions(name)
    start(name, versions)
    config = config_for(name, log_root)
    serve_traffic(log_root, "champion", versions[0], 10)
    serve_traffic(log_root, "challenger", versions[1], 10)

    def start_failing() -> None:
        time.sleep(config.evaluation_interval_s * 1.5)
        serve_traffic(log_root, "challenger", versions[1], 6, errors=6)

    breaker = threading.Thread(target=start_failing)
    breaker.start()
    outcomes: list[ReleaseOutcome] = []
    while not outcomes or outcomes[-1].state == "running":
        outcomes.append(release(config))
        if outcomes[-1].state == "running":
            time.sleep(config.evaluation_interval_s)
    breaker.join()

    outcome = outcomes[-1]
    assert outcome.state == "rolled_back", outcome.reasons
    assert "error rate" in outcome.reasons[0]
    assert registry.alias_version(name, registry.CHAMPION) == versions[0]
    assert outcome.evidence is not None and outcome.ended_at is not None
    first_error = outcome.evidence.challenger.first_error_at
    assert first_error is not None
    breach_to_rollback = (outcome.ended_at - first_error).total_seconds()
    print(
        f"breach to rollback: {breach_to_rollback:.2f} s (evaluation interval "
        f"{config.evaluation_interval_s} s, {len(outcomes)} evaluations)"
    )
    # At most one interval of waiting plus one evaluation (a flow run: a few seconds here).
    assert breach_to_rollback < config.evaluation_interval_s + 15
    assert decided_event(name).payload["decision"] == "rolled_back"


def test_a_spent_budget_without_feedback_rejects(log_root: Path) -> None:
    name = "release-unproven"
    versions = register_versions(name)
    start(name, versions)
    config = config_for(name, log_root)
    serve_traffic(log_root, "champion", versions[0], 300)
    serve_traffic(log_root, "challenger", versions[1], config.rule.max_requests)

    outcome = release(config)

    assert outcome.state == "rejected"
    assert outcome.reasons[0].startswith("budget spent (200 challenger requests >= 200)")
    assert registry.alias_version(name, registry.CHAMPION) == versions[0]


def test_a_promotion_after_the_champion_moved_is_stale(log_root: Path) -> None:
    name = "release-stale"
    versions = register_versions(name, count=3)
    start(name, [versions[0], versions[2]])
    registry.set_alias(name, registry.CHAMPION, versions[1])  # e.g. a rollback meanwhile
    serve_traffic(log_root, "champion", versions[0], 10, liked=2, disliked=8)
    serve_traffic(log_root, "challenger", versions[2], 10, liked=10)

    outcome = release(config_for(name, log_root))

    assert outcome.state == "rejected" and "stale" in outcome.reasons[-1]
    assert registry.alias_version(name, registry.CHAMPION) == versions[1]


def test_a_gate_pass_with_rollout_release_starts_a_canary(log_root: Path) -> None:
    name = "release-rollout"
    versions = register_versions(name)
    report = EvaluationReport(
        run_id="run",
        dataset_id="d",
        dataset_uri="d",
        adapter_uri="a",
        adapter_sha256="s",
        base_ref="tiny-random",
        base_sha256=None,
        training_run_id=None,
        config_fingerprint=None,
        champion_version=versions[0],
        examples=1,
        metrics={},
        intervals={},
    )
    passed = GateDecision(True, "champion", ["rougeL improves"])

    decision = save_decision.fn(
        name, versions[1], passed, report, ReleasePlan(mode="canary", share=0.1)
    )

    assert decision.verdict == "released" and not decision.is_champion
    assert registry.alias_version(name, registry.CHAMPION) == versions[0]
    started = read_release(name)
    assert started is not None and started.running
    assert (started.version, started.champion_version, started.share) == (
        versions[1],
        versions[0],
        0.1,
    )
    assert started.started_at <= datetime.now(UTC)
