"""The promotion gate: a pure decision from evaluation results and a policy in config.

The candidate is compared with the current champion, or with the base model when there is
no champion yet (the first model ever must beat the base). Improvements are signed by each
metric's direction, so "lower eval loss" counts as an improvement.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmops.model.fairness import MEASURES, FairnessResult
from llmops.model.metrics import METRIC_DIRECTIONS, Interval
from llmops.model.slices import SliceResult


class SliceRegression(BaseModel):
    """How far the primary metric may drop on any one slice large enough to trust."""

    model_config = ConfigDict(extra="forbid")

    min_examples: int = Field(ge=1, description="Slices with fewer examples are not checked.")
    max_drop: float = Field(ge=0.0, description="Largest tolerated drop of the slice's mean.")


class GatePolicy(BaseModel):
    """What a candidate must show to become champion."""

    model_config = ConfigDict(extra="forbid")

    primary_metric: str = Field("rougeL", description="The metric the candidate must improve.")
    min_improvement: float = Field(
        0.0, ge=0.0, description="Minimum gain of the primary metric over the reference."
    )
    require_significant: bool = Field(
        True, description="The primary metric's bootstrap CI must lie entirely above zero."
    )
    guard_metrics: dict[str, float] = Field(
        default_factory=lambda: {"eval_loss": 0.05},
        description="Metric -> the largest regression tolerated (in the metric's own units).",
    )
    min_scores: dict[str, float] = Field(
        default_factory=dict,
        description="Optional absolute floors for higher-is-better metrics.",
    )
    max_slice_regression: SliceRegression | None = Field(
        None, description="No slice may drop more than this on the primary metric (None: off)."
    )
    max_fairness_spread: dict[str, float] = Field(
        default_factory=dict,
        description=f"Bias-probe measure ({', '.join(MEASURES)}) -> the largest spread over "
        "the groups of any attribute (needs the evaluation's bias probe).",
    )

    @field_validator("primary_metric")
    @classmethod
    def _known_directional(cls, name: str) -> str:
        if METRIC_DIRECTIONS.get(name, 0) == 0:
            raise ValueError(f"primary_metric must be one of {_directional()}, got {name!r}")
        return name

    @field_validator("guard_metrics")
    @classmethod
    def _known_guards(cls, guards: dict[str, float]) -> dict[str, float]:
        unknown = [m for m in guards if METRIC_DIRECTIONS.get(m, 0) == 0]
        if unknown or any(t < 0 for t in guards.values()):
            raise ValueError(f"guards must be {_directional()} with tolerance >= 0: {guards}")
        return guards

    @field_validator("min_scores")
    @classmethod
    def _higher_is_better(cls, floors: dict[str, float]) -> dict[str, float]:
        wrong = [m for m in floors if METRIC_DIRECTIONS.get(m) != 1]
        if wrong:
            raise ValueError(f"min_scores only apply to higher-is-better metrics, not {wrong}")
        return floors

    @field_validator("max_fairness_spread")
    @classmethod
    def _known_measures(cls, limits: dict[str, float]) -> dict[str, float]:
        if any(m not in MEASURES for m in limits) or any(v < 0 for v in limits.values()):
            raise ValueError(f"fairness limits must be {list(MEASURES)} with limit >= 0: {limits}")
        return limits


@dataclass(frozen=True)
class GateDecision:
    """The verdict, what it was compared against, and every reason in plain words."""

    passed: bool
    compared_to: str  # "champion" or "base"
    reasons: list[str] = field(default_factory=list)


def decide(
    policy: GatePolicy,
    candidate: dict[str, float],
    intervals: dict[str, Interval],
    compared_to: str,
    slices: Sequence[SliceResult] = (),
    fairness: FairnessResult | None = None,
) -> GateDecision:
    """Apply the policy to the candidate's metrics and its intervals against `compared_to`
    (and, when the policy bounds them, to its slice results and bias-probe result)."""
    reasons: list[str] = []
    failed = False
    for metric in (policy.primary_metric, *policy.guard_metrics):
        if metric not in intervals or metric not in candidate:
            return GateDecision(False, compared_to, [f"{metric} was not measured: cannot decide"])

    sign = METRIC_DIRECTIONS[policy.primary_metric]
    primary = intervals[policy.primary_metric]
    gain, low, high = sign * primary.diff, sign * primary.low, sign * primary.high
    ci = f"CI [{min(low, high):+.4f}, {max(low, high):+.4f}]"
    if gain <= policy.min_improvement:
        failed = True
        reasons.append(
            f"{policy.primary_metric} gain {gain:+.4f} over {compared_to} is not above the "
            f"required {policy.min_improvement:+.4f} ({ci})"
        )
    elif policy.require_significant and min(low, high) <= 0:
        failed = True
        reasons.append(f"{policy.primary_metric} gain {gain:+.4f} could be noise ({ci} includes 0)")
    else:
        reasons.append(f"{policy.primary_metric} improves by {gain:+.4f} over {compared_to} ({ci})")

    for metric, tolerance in policy.guard_metrics.items():
        change = METRIC_DIRECTIONS[metric] * intervals[metric].diff
        if change < -tolerance:
            failed = True
            reasons.append(f"guard {metric} regresses by {-change:.4f} > tolerance {tolerance}")
        else:
            reasons.append(
                f"guard {metric} holds (improvement {change:+.4f}, tolerance {tolerance})"
            )

    for metric, floor in policy.min_scores.items():
        value = candidate.get(metric)
        if value is None or value < floor:
            failed = True
            reasons.append(f"{metric} = {value} is below the floor {floor}")

    for check, reason in [
        *slice_checks(policy, slices),
        *fairness_checks(policy.max_fairness_spread, fairness),
    ]:
        failed |= not check
        reasons.append(reason)
    return GateDecision(not failed, compared_to, reasons)


def slice_checks(policy: GatePolicy, slices: Sequence[SliceResult]) -> list[tuple[bool, str]]:
    """(passed, reason) per slice that regresses beyond `max_slice_regression` on the primary
    metric, or one line saying the slices hold; nothing when the policy does not bound them."""
    bound, metric = policy.max_slice_regression, policy.primary_metric
    if bound is None:
        return []
    if not slices or any(metric not in s.intervals for s in slices):
        return [(False, f"{metric} was not measured per slice: cannot check slice regressions")]
    checked = [s for s in slices if s.count >= bound.min_examples]
    sign = METRIC_DIRECTIONS[metric]
    failures = [
        (
            False,
            f"slice {s.name}: {metric} drops {-sign * s.intervals[metric].diff:.4f} > "
            f"{bound.max_drop} vs {s.compared_to} (n={s.count})",
        )
        for s in checked
        if -sign * s.intervals[metric].diff > bound.max_drop
    ]
    return failures or [
        (
            True,
            f"slices hold: none of {len(checked)} with n >= {bound.min_examples} drops more "
            f"than {bound.max_drop} on {metric} ({len(slices) - len(checked)} smaller skipped)",
        )
    ]


def fairness_checks(
    limits: dict[str, float], fairness: FairnessResult | None
) -> list[tuple[bool, str]]:
    """(passed, reason) per bias-probe attribute and bounded measure; nothing when unbounded."""
    if not limits:
        return []
    if fairness is None:
        return [(False, "the bias probe was not run: cannot check fairness spreads")]
    checks = []
    for attribute, spreads in fairness.spreads.items():
        for measure, limit in limits.items():
            holds = spreads[measure] <= limit
            relation = "<=" if holds else ">"
            checks.append(
                (
                    holds,
                    f"fairness {attribute}: {measure} spread {spreads[measure]:.4f} {relation} "
                    f"{limit} across its groups",
                )
            )
    return checks


# released: passed the gate and went live as a release; the release flow decides.
Verdict = Literal["promoted", "rejected", "already_champion", "released"]


@dataclass(frozen=True)
class SettledDecision:
    """The gate's decision as it stands when the aliases would move."""

    verdict: Verdict
    compared_to: str
    reasons: list[str]


def settle(
    decision: GateDecision,
    version: str,
    champion_chain: list[str],
    champion_evaluated: str | None,
) -> SettledDecision:
    """Check a gate decision against the registry at the moment of the alias move
    (`champion_chain`: the champion, then each version it replaced). A version that already is
    champion stays so; a decision against a champion that has since moved is stale, so it never
    passes (the candidate was never compared with the new champion); and a version that was
    champion before comes back by rollback, never by promotion, which would make the history a
    loop."""
    champion_now = champion_chain[0] if champion_chain else None
    if champion_now == version:
        return already_champion(version)
    if version in champion_chain:
        return SettledDecision(
            "rejected",
            decision.compared_to,
            [f"version {version} was champion before: `llmops rollback` restores it"],
        )
    if champion_now != champion_evaluated:
        return SettledDecision(
            "rejected",
            decision.compared_to,
            [
                f"the champion is now {champion_now}, but the evaluation compared with "
                f"{champion_evaluated or 'the base (no champion)'}: evaluate again"
            ],
        )
    verdict: Verdict = "promoted" if decision.passed else "rejected"
    return SettledDecision(verdict, decision.compared_to, decision.reasons)


def already_champion(version: str) -> SettledDecision:
    """The decision about a version that is the champion already: nothing moves."""
    return SettledDecision(
        "already_champion", "champion", [f"version {version} is already the champion"]
    )


def _directional() -> list[str]:
    return sorted(m for m, d in METRIC_DIRECTIONS.items() if d)
