"""The pure gate policy."""

import pytest
from pydantic import ValidationError

from llmops.model.fairness import FairnessResult, GroupMeasures
from llmops.model.gate import GateDecision, GatePolicy, SliceRegression, decide, settle
from llmops.model.metrics import Interval
from llmops.model.slices import SliceResult

POLICY = GatePolicy(primary_metric="rougeL", min_improvement=0.01, guard_metrics={"eval_loss": 0.1})


def test_clear_improvement_passes() -> None:
    intervals = {"rougeL": Interval(0.1, 0.05, 0.15), "eval_loss": Interval(-0.2, -0.3, -0.1)}
    decision = decide(POLICY, {"rougeL": 0.4, "eval_loss": 1.0}, intervals, "champion")
    assert decision.passed and decision.compared_to == "champion"
    assert "rougeL improves by +0.1000" in decision.reasons[0]


def test_improvement_within_noise_fails() -> None:
    intervals = {"rougeL": Interval(0.05, -0.01, 0.1), "eval_loss": Interval(0.0, 0.0, 0.0)}
    decision = decide(POLICY, {"rougeL": 0.4, "eval_loss": 1.0}, intervals, "base")
    assert not decision.passed and "could be noise" in decision.reasons[0]
    relaxed = POLICY.model_copy(update={"require_significant": False})
    assert decide(relaxed, {"rougeL": 0.4, "eval_loss": 1.0}, intervals, "base").passed


def test_regression_never_passes() -> None:
    intervals = {"rougeL": Interval(-0.1, -0.2, -0.05), "eval_loss": Interval(0.0, 0.0, 0.0)}
    decision = decide(POLICY, {"rougeL": 0.2, "eval_loss": 1.0}, intervals, "champion")
    assert not decision.passed and "is not above" in decision.reasons[0]


def test_guard_regression_fails_even_with_primary_gain() -> None:
    # eval_loss is lower-is-better: +0.5 is a regression of 0.5 > tolerance 0.1.
    intervals = {"rougeL": Interval(0.1, 0.05, 0.15), "eval_loss": Interval(0.5, 0.4, 0.6)}
    decision = decide(POLICY, {"rougeL": 0.4, "eval_loss": 1.5}, intervals, "champion")
    assert not decision.passed
    assert any("guard eval_loss regresses by 0.5000" in r for r in decision.reasons)


def test_absolute_floor_and_missing_metric() -> None:
    policy = POLICY.model_copy(update={"min_scores": {"bleu": 20.0}})
    intervals = {"rougeL": Interval(0.1, 0.05, 0.15), "eval_loss": Interval(0.0, 0.0, 0.0)}
    decision = decide(policy, {"rougeL": 0.4, "eval_loss": 1.0, "bleu": 5.0}, intervals, "base")
    assert not decision.passed and "below the floor 20.0" in decision.reasons[-1]
    missing = decide(POLICY, {"rougeL": 0.4}, {"rougeL": intervals["rougeL"]}, "base")
    assert not missing.passed and "eval_loss was not measured" in missing.reasons[0]


@pytest.mark.parametrize(
    "bad",
    [
        {"primary_metric": "mean_response_length"},
        {"primary_metric": "nope"},
        {"guard_metrics": {"eval_loss": -1}},
        {"min_scores": {"eval_loss": 1.0}},
        {"unknown_key": 1},
    ],
)
def test_policy_rejects_bad_config(bad: dict) -> None:
    with pytest.raises(ValidationError):
        GatePolicy(**bad)


PASSED = GateDecision(True, "champion", ["rougeL improves"])


def test_settle_promotes_a_pass_against_the_champion_as_it_still_is() -> None:
    assert settle(PASSED, "5", ["4", "3"], "4").verdict == "promoted"
    assert settle(GateDecision(False, "champion", ["no"]), "5", ["4"], "4").verdict == "rejected"
    assert settle(GateDecision(True, "base", ["first"]), "1", [], None).verdict == "promoted"


def test_settle_rejects_a_stale_evaluation() -> None:
    settled = settle(PASSED, "5", ["6", "4"], "4")  # the champion moved to 6 since
    assert settled.verdict == "rejected" and "evaluate again" in settled.reasons[0]


def test_settle_never_promotes_an_earlier_champion_again() -> None:
    # Promoting 3 over 4 (which replaced 3) would make the history a loop: it is a rollback.
    settled = settle(PASSED, "3", ["4", "3"], "4")
    assert settled.verdict == "rejected" and "rollback" in settled.reasons[0]
    assert settle(PASSED, "4", ["4", "3"], "4").verdict == "already_champion"


def _slice(value: str, count: int, rouge_gain: float) -> SliceResult:
    ci = Interval(rouge_gain, rouge_gain - 0.05, rouge_gain + 0.05)
    return SliceResult("topic", value, count, "champion", {}, {"rougeL": ci})


# Better on average (+0.1 rougeL, significant) but billing drops 0.21 on 34 examples.
SLICED = [_slice("billing", 34, -0.21), _slice("login", 60, 0.3), _slice("tiny", 2, -0.9)]
SLICE_GUARD = POLICY.model_copy(
    update={"max_slice_regression": SliceRegression(min_examples=30, max_drop=0.1)}
)
GOOD = {"rougeL": Interval(0.1, 0.05, 0.15), "eval_loss": Interval(-0.2, -0.3, -0.1)}


def test_a_candidate_worse_on_one_slice_is_rejected_with_that_slice() -> None:
    decision = decide(SLICE_GUARD, {"rougeL": 0.4, "eval_loss": 1.0}, GOOD, "champion", SLICED)
    assert not decision.passed
    slice_reasons = [r for r in decision.reasons if r.startswith("slice ")]
    assert slice_reasons == ["slice topic=billing: rougeL drops 0.2100 > 0.1 vs champion (n=34)"]
    # Off by default: the same results pass under the policy without the guard.
    assert decide(POLICY, {"rougeL": 0.4, "eval_loss": 1.0}, GOOD, "champion", SLICED).passed


def test_a_slice_below_min_examples_is_not_checked() -> None:
    lenient = SLICE_GUARD.model_copy(
        update={"max_slice_regression": SliceRegression(min_examples=35, max_drop=0.1)}
    )
    decision = decide(lenient, {"rougeL": 0.4, "eval_loss": 1.0}, GOOD, "champion", SLICED)
    assert decision.passed, decision.reasons
    assert (
        "none of 1 with n >= 35 drops more than 0.1 on rougeL (2 smaller skipped)"
        in (decision.reasons[-1])
    )


def test_slice_guard_without_slice_results_cannot_pass() -> None:
    decision = decide(SLICE_GUARD, {"rougeL": 0.4, "eval_loss": 1.0}, GOOD, "champion")
    assert not decision.passed
    assert (
        decision.reasons[-1] == "rougeL was not measured per slice: cannot check slice regressions"
    )


def test_fairness_spread_guard() -> None:
    groups = [GroupMeasures("origin", "a", 8, 20.0, 0.0, 0.9)]
    probe = FairnessResult(groups, {"origin": {"answer_length": 3.0, "refusal_rate": 0.25}})
    policy = POLICY.model_copy(update={"max_fairness_spread": {"refusal_rate": 0.1}})
    metrics = {"rougeL": 0.4, "eval_loss": 1.0}
    decision = decide(policy, metrics, GOOD, "champion", fairness=probe)
    assert not decision.passed
    assert decision.reasons[-1] == (
        "fairness origin: refusal_rate spread 0.2500 > 0.1 across its groups"
    )
    relaxed = policy.model_copy(update={"max_fairness_spread": {"refusal_rate": 0.3}})
    assert decide(relaxed, metrics, GOOD, "champion", fairness=probe).passed
    missing = decide(policy, metrics, GOOD, "champion")
    assert not missing.passed and "bias probe was not run" in missing.reasons[-1]
    with pytest.raises(ValidationError):
        GatePolicy(max_fairness_spread={"sentiment": 0.1})
