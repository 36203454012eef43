"""The release rule on hand-built inference-log frames: evidence per variant, the exact
probability, and every branch of the decision (guards, promote, reject, budget, shadow, wait)."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from llmops.release import new_release
from llmops.release_rule import (
    ReleaseEvidence,
    ReleasePolicy,
    VariantEvidence,
    decide_release,
    gather_evidence,
    probability_challenger_better,
)

POLICY = ReleasePolicy(
    min_feedbacks=10,
    max_requests=500,
    max_feedbacks=100,
    max_duration_s=3600,
    max_error_rate=0.1,
    max_latency_ratio=2.0,
    guard_min_requests=5,
)


def evidence(
    champion: dict | None = None, challenger: dict | None = None, elapsed_s: float = 60.0
) -> ReleaseEvidence:
    return ReleaseEvidence(
        champion=VariantEvidence(version="1", **(champion or {})),
        challenger=VariantEvidence(version="2", **(challenger or {})),
        elapsed_s=elapsed_s,
    )


def test_exact_probability_matches_monte_carlo():
    draws = np.random.default_rng(0)
    for champion, challenger in [((12, 8), (15, 5)), ((3, 17), (4, 16)), ((30, 10), (10, 30))]:
        exact = probability_challenger_better(*champion, *challenger)
        sampled = np.mean(
            draws.beta(1 + challenger[0], 1 + challenger[1], 200_000)
            > draws.beta(1 + champion[0], 1 + champion[1], 200_000)
        )
        assert exact == pytest.approx(sampled, abs=0.005)
    assert probability_challenger_better(7, 3, 7, 3) == pytest.approx(0.5)


def test_gather_evidence_counts_each_variant_since_the_start():
    started = datetime(2026, 1, 1, 12, tzinfo=UTC)
    release = new_release("m", "2", "1", "canary", 0.5).model_copy(update={"started_at": started})

    def at(seconds: float) -> str:
        return (started + timedelta(seconds=seconds)).isoformat()

    requests = pd.DataFrame(
        [
            # before the release: not evidence
            {"timestamp": at(-5), "request_id": "old", "model_version": "1", "latency_ms": 9.0},
            {"timestamp": at(1), "request_id": "a", "model_version": "1", "variant": "champion",
             "latency_ms": 10.0, "completion_tokens": 4},
            {"timestamp": at(2), "request_id": "b", "model_version": "2", "variant": "challenger",
             "latency_ms": 20.0, "completion_tokens": 5},
            {"timestamp": at(3), "request_id": "c", "model_version": "2", "variant": "challenger",
             "latency_ms": 40.0, "error": "server_error"},
            # no variant logged (older server): counted by its version
            {"timestamp": at(4), "request_id": "d", "model_version": "2", "latency_ms": 30.0},
            # another version entirely (e.g. a host still on an old champion): not evidence
            {"timestamp": at(5), "request_id": "e", "model_version": "7", "variant": "champion"},
        ]
    )  # fmt: skip
    feedback = pd.DataFrame(
        [
            {"request_id": "a", "score": 0.0},
            {"request_id": "a", "score": 1.0},  # changed their mind: the latest counts
            {"request_id": "b", "score": 0.0},
            {"request_id": "d", "score": 1.0},
            {"request_id": "old", "score": 1.0},
        ]
    )
    found = gather_evidence(requests, feedback, release, started + timedelta(seconds=30))
    assert found.elapsed_s == 30.0
    champion, challenger = found.champion, found.challenger
    assert (champion.requests, champion.errors, champion.feedbacks, champion.positive) == (
        1,
        0,
        1,
        1,
    )
    assert (challenger.requests, challenger.errors, challenger.feedbacks, challenger.positive) == (
        3,
        1,
        2,
        1,
    )
    assert challenger.completion_tokens == 5 and challenger.latency_p50_ms == 30.0
    assert challenger.first_error_at == started + timedelta(seconds=3)
    assert challenger.error_rate == pytest.approx(1 / 3)


def test_empty_log_is_no_evidence():
    release = new_release("m", "2", "1", "canary", 0.5)
    empty = pd.DataFrame(columns=["timestamp", "request_id", "model_version", "latency_ms"])
    found = gather_evidence(empty, pd.DataFrame(), release, datetime.now(UTC))
    assert found.champion.requests == found.challenger.requests == 0
    assert decide_release(POLICY, found, "canary").state == "running"


def test_error_guard_rolls_back_once_enough_requests():
    few = evidence(challenger={"requests": 4, "errors": 4})
    assert decide_release(POLICY, few, "canary").state == "running"
    breach = decide_release(POLICY, evidence(challenger={"requests": 5, "errors": 1}), "canary")
    assert breach.state == "rolled_back" and "error rate 0.200" in breach.reasons[0]
    # the guard wins over a quality pass
    good_but_failing = evidence(
        champion={"requests": 50, "feedbacks": 20, "positive": 2},
        challenger={"requests": 50, "errors": 10, "feedbacks": 20, "positive": 20},
    )
    assert decide_release(POLICY, good_but_failing, "canary").state == "rolled_back"


def test_latency_guard_compares_p95_with_the_champion():
    def p95(champion: float, challenger: float) -> str:
        found = evidence(
            champion={"requests": 10, "latency_p95_ms": champion},
            challenger={"requests": 10, "latency_p95_ms": challenger},
        )
        return decide_release(POLICY, found, "canary").state

    assert p95(100.0, 199.0) == "running"
    assert p95(100.0, 201.0) == "rolled_back"


def test_quality_promotes_rejects_or_waits():
    def verdict(champion_positive: int, challenger_positive: int, n: int = 20) -> str:
        found = evidence(
            champion={"requests": n, "feedbacks": n, "positive": champion_positive},
            challenger={"requests": n, "feedbacks": n, "positive": challenger_positive},
        )
        return decide_release(POLICY, found, "canary").state

    assert verdict(8, 17) == "promoted"
    assert verdict(12, 3) == "rejected"
    assert verdict(10, 11) == "running"  # not clear either way yet
    assert verdict(2, 9, n=9) == "running"  # under min_feedbacks: P is not used


def test_budget_spent_without_a_clear_result_rejects():
    requests = decide_release(POLICY, evidence(challenger={"requests": 500}), "canary")
    assert requests.state == "rejected" and "too few feedbacks" in requests.reasons[0]
    timed_out = evidence(
        champion={"requests": 30, "feedbacks": 30, "positive": 15},
        challenger={"requests": 30, "feedbacks": 30, "positive": 16},
        elapsed_s=3600,
    )
    late = decide_release(POLICY, timed_out, "canary")
    assert late.state == "rejected" and "never reached 0.95" in late.reasons[0]
    assert late.probability == pytest.approx(0.6, abs=0.1)


def test_a_shadow_release_ends_stopped_at_its_budget():
    found = evidence(champion={"requests": 600}, challenger={"requests": 500})
    verdict = decide_release(POLICY, found, "shadow")
    assert verdict.state == "stopped" and "start a canary" in verdict.reasons[0]


def test_policy_needs_a_feedback_budget_that_allows_a_decision():
    with pytest.raises(ValueError, match="max_feedbacks"):
        ReleasePolicy(min_feedbacks=50, max_feedbacks=10)
