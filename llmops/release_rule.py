"""The release rule: live evidence per variant from the inference log, and the decision a release
flow takes on it. Plain functions over DataFrames, tested without Prefect or a server.

The rule, checked in this order at every evaluation of a running release:

1. Guards (they stop the challenger at once, state `rolled_back`; the champion never moved):
   - errors: once the challenger has at least `guard_min_requests` requests, its error rate
     (requests logged with an `error`) above `max_error_rate`;
   - latency: once both variants have at least `guard_min_requests` requests, the challenger's
     p95 latency above the champion's p95 x `max_latency_ratio`.
2. Quality: each variant's positive-feedback rate (feedback score >= 0.5) gets a Beta(1, 1)
   prior, so its posterior is Beta(1 + positive, 1 + negative). Once both variants have at least
   `min_feedbacks` feedbacks, P = P(challenger rate > champion rate), computed exactly (no
   sampling, so the same evidence always gives the same decision):
   P >= `promote_probability` promotes; P <= `reject_probability` rejects.
3. Budget: when the challenger has served `max_requests` requests, received `max_feedbacks`
   feedbacks, or the release has run `max_duration_s` seconds, without a decision by 2, it is
   rejected (the champion stays). A shadow release has no feedback on the challenger's answers
   (users never see them), so at its budget, with the guards held, it ends `stopped`: safe to
   canary, not proven better.
4. Otherwise the release keeps running and the next evaluation looks again.
"""

import math
from datetime import datetime
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmops.release import Mode, Release, State

POSITIVE_SCORE = 0.5
Variant = Literal["champion", "challenger"]


class ReleasePolicy(BaseModel):
    """When a release promotes, rejects, rolls back or keeps watching."""

    model_config = ConfigDict(extra="forbid")

    min_feedbacks: int = Field(
        20, ge=1, le=1_000_000, description="Feedbacks each variant needs before P is used."
    )
    promote_probability: float = Field(
        0.95, gt=0.5, lt=1.0, description="Promote when P(challenger better) reaches this."
    )
    reject_probability: float = Field(
        0.05, gt=0.0, lt=0.5, description="Reject when P(challenger better) falls to this."
    )
    max_requests: int = Field(
        2000, ge=1, description="Budget: challenger requests, then decide (reject if unproven)."
    )
    max_feedbacks: int = Field(
        200, ge=1, description="Budget: challenger feedbacks, then decide (reject if unproven)."
    )
    max_duration_s: float = Field(
        86_400.0, gt=0.0, description="Budget: seconds since the release started."
    )
    max_error_rate: float = Field(
        0.05, ge=0.0, lt=1.0, description="Guard: the challenger's largest error rate."
    )
    max_latency_ratio: float = Field(
        1.5, gt=1.0, description="Guard: challenger p95 latency / champion p95 latency."
    )
    guard_min_requests: int = Field(
        20, ge=1, description="Requests a variant needs before the guards judge it."
    )

    @model_validator(mode="after")
    def _feedback_budget_allows_a_decision(self) -> "ReleasePolicy":
        if self.max_feedbacks < self.min_feedbacks:
            raise ValueError("max_feedbacks must be at least min_feedbacks")
        return self


class VariantEvidence(BaseModel):
    """What one variant did since the release started."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    requests: int = 0
    errors: int = 0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    completion_tokens: int = 0
    feedbacks: int = 0
    positive: int = 0
    first_error_at: datetime | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def positive_share(self) -> float | None:
        return self.positive / self.feedbacks if self.feedbacks else None


class ReleaseEvidence(BaseModel):
    """Both variants' evidence, and how long the release has run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    champion: VariantEvidence
    challenger: VariantEvidence
    elapsed_s: float


class RuleVerdict(BaseModel):
    """What the rule says now: keep `running`, or the state the release ends in, and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    state: State
    reasons: list[str]
    probability: float | None = Field(
        None, description="P(challenger's positive rate > champion's), once computable."
    )


def gather_evidence(
    requests: pd.DataFrame, feedback: pd.DataFrame, release: Release, now: datetime
) -> ReleaseEvidence:
    """Each variant's requests, errors, latency, tokens and feedback since `release` started.

    A request row counts for a variant when its `variant` says so and its `model_version` is
    that variant's version; rows logged before serving recorded `variant` count by version."""
    window = _since(requests, release.started_at)
    window = window.assign(variant=_variants(window, release))
    versions = {"champion": release.champion_version, "challenger": release.version}
    latest_feedback = _latest_feedback(feedback)
    evidence = {
        variant: _variant_evidence(
            window[(window["variant"] == variant) & (window["model_version"] == version)],
            latest_feedback,
            version,
        )
        for variant, version in versions.items()
    }
    return ReleaseEvidence(**evidence, elapsed_s=(now - release.started_at).total_seconds())


def probability_challenger_better(
    champion_positive: int,
    champion_negative: int,
    challenger_positive: int,
    challenger_negative: int,
) -> float:
    """P(p_challenger > p_champion) for independent Beta(1 + positive, 1 + negative) posteriors.

    Exact (Evan Miller's closed form, summed over the challenger's integer alpha), in logs."""
    a_c, b_c = 1 + champion_positive, 1 + champion_negative
    a_h, b_h = 1 + challenger_positive, 1 + challenger_negative
    total = 0.0
    for i in range(a_h):
        total += math.exp(
            _log_beta(a_c + i, b_c + b_h)
            - math.log(b_h + i)
            - _log_beta(1 + i, b_h)
            - _log_beta(a_c, b_c)
        )
    return min(1.0, max(0.0, total))


def decide_release(policy: ReleasePolicy, evidence: ReleaseEvidence, mode: Mode) -> RuleVerdict:
    """Apply the rule in the module docstring, in its order: guards, quality, budget, wait."""
    champion, challenger = evidence.champion, evidence.challenger
    breach = guard_breach(policy, evidence)
    if breach:
        return RuleVerdict(state="rolled_back", reasons=[breach])

    probability = None
    if min(champion.feedbacks, challenger.feedbacks) >= policy.min_feedbacks:
        probability = probability_challenger_better(
            champion.positive,
            champion.feedbacks - champion.positive,
            challenger.positive,
            challenger.feedbacks - challenger.positive,
        )
        rates = (
            f"positive feedback {_share(challenger)} for the challenger vs {_share(champion)} "
            f"for the champion: P(challenger better) = {probability:.3f}"
        )
        if probability >= policy.promote_probability:
            return RuleVerdict(
                state="promoted",
                reasons=[f"{rates} >= {policy.promote_probability}"],
                probability=probability,
            )
        if probability <= policy.reject_probability:
            return RuleVerdict(
                state="rejected",
                reasons=[f"{rates} <= {policy.reject_probability}"],
                probability=probability,
            )

    spent = budget_spent(policy, evidence)
    guards = guards_held(evidence)
    if spent and mode == "shadow" and challenger.feedbacks == 0:
        return RuleVerdict(
            state="stopped",
            reasons=[
                f"shadow release complete ({spent}); {guards}. Users never saw its answers, "
                "so quality is unproven: start a canary to compare feedback"
            ],
        )
    if spent:
        if probability is None:
            unproven = (
                f"too few feedbacks to compare (champion {champion.feedbacks}, challenger "
                f"{challenger.feedbacks}; {policy.min_feedbacks} each needed)"
            )
        else:
            unproven = (
                f"P(challenger better) = {probability:.3f} never reached "
                f"{policy.promote_probability}"
            )
        return RuleVerdict(
            state="rejected",
            reasons=[f"budget spent ({spent}): {unproven}"],
            probability=probability,
        )
    return RuleVerdict(
        state="running",
        reasons=[
            f"waiting: challenger {challenger.requests}/{policy.max_requests} requests, "
            f"{challenger.feedbacks}/{policy.max_feedbacks} feedbacks, "
            f"{evidence.elapsed_s:.0f}/{policy.max_duration_s:.0f} s; {guards}"
        ],
        probability=probability,
    )


def guard_breach(policy: ReleasePolicy, evidence: ReleaseEvidence) -> str | None:
    """Why the challenger must stop now (errors or latency), or None while the guards hold."""
    champion, challenger = evidence.champion, evidence.challenger
    errors_judged = challenger.requests >= policy.guard_min_requests
    if errors_judged and challenger.error_rate > policy.max_error_rate:
        return (
            f"guard breached: challenger error rate {challenger.error_rate:.3f} "
            f"({challenger.errors}/{challenger.requests}) above {policy.max_error_rate}"
        )
    if (
        min(champion.requests, challenger.requests) >= policy.guard_min_requests
        and champion.latency_p95_ms
        and challenger.latency_p95_ms is not None
    ):
        ratio = challenger.latency_p95_ms / champion.latency_p95_ms
        if ratio > policy.max_latency_ratio:
            return (
                f"guard breached: challenger p95 latency {challenger.latency_p95_ms:.0f} ms is "
                f"{ratio:.2f}x the champion's {champion.latency_p95_ms:.0f} ms "
                f"(limit {policy.max_latency_ratio}x)"
            )
    return None


def budget_spent(policy: ReleasePolicy, evidence: ReleaseEvidence) -> str | None:
    """Which budget is spent, in words, or None."""
    challenger = evidence.challenger
    if challenger.requests >= policy.max_requests:
        return f"{challenger.requests} challenger requests >= {policy.max_requests}"
    if challenger.feedbacks >= policy.max_feedbacks:
        return f"{challenger.feedbacks} challenger feedbacks >= {policy.max_feedbacks}"
    if evidence.elapsed_s >= policy.max_duration_s:
        return f"{evidence.elapsed_s:.0f} s >= {policy.max_duration_s:.0f} s"
    return None


def guards_held(evidence: ReleaseEvidence) -> str:
    """The guards' figures, in words."""
    challenger = evidence.challenger
    p95 = challenger.latency_p95_ms
    latency = f"p95 {p95:.0f} ms" if p95 is not None else "no latency yet"
    return f"guards hold (challenger errors {challenger.errors}/{challenger.requests}, {latency})"


def describe_rule(policy: ReleasePolicy) -> str:
    """The rule with this policy's numbers, as the decision artifact and event state it."""
    return (
        f"Guards, at every evaluation: challenger error rate > {policy.max_error_rate} or "
        f"challenger p95 latency > {policy.max_latency_ratio}x the champion's (after "
        f"{policy.guard_min_requests} requests) rolls back at once. Quality: Beta(1,1) priors on "
        f"each variant's positive-feedback rate (score >= {POSITIVE_SCORE}); once both have "
        f"{policy.min_feedbacks} feedbacks, P(challenger > champion) (exact) >= "
        f"{policy.promote_probability} promotes, <= {policy.reject_probability} rejects. Budget: "
        f"{policy.max_requests} challenger requests, {policy.max_feedbacks} challenger "
        f"feedbacks or {policy.max_duration_s:.0f} s without a decision rejects (a shadow release "
        "without feedback ends stopped)."
    )


def _since(requests: pd.DataFrame, started_at: datetime) -> pd.DataFrame:
    if requests.empty:
        return requests.assign(model_version=pd.Series(dtype=str))
    stamps = pd.to_datetime(requests["timestamp"], utc=True, format="ISO8601")
    window = requests[stamps >= pd.Timestamp(started_at)].copy()
    window["timestamp"] = stamps[stamps >= pd.Timestamp(started_at)]
    window["model_version"] = window["model_version"].astype(str)
    return window


def _variants(window: pd.DataFrame, release: Release) -> pd.Series:
    """The logged variant, else the one the row's model version belongs to."""
    by_version = window["model_version"].map(
        {release.version: "challenger", release.champion_version: "champion"}
    )
    if "variant" not in window:
        return by_version
    return window["variant"].where(window["variant"].notna(), by_version)


def _latest_feedback(feedback: pd.DataFrame) -> pd.DataFrame:
    """One feedback per request: the latest (a user may change their rating)."""
    if feedback.empty:
        return pd.DataFrame({"request_id": [], "score": []})
    return feedback.drop_duplicates("request_id", keep="last")[["request_id", "score"]]


def _variant_evidence(rows: pd.DataFrame, feedback: pd.DataFrame, version: str) -> VariantEvidence:
    if rows.empty:
        return VariantEvidence(version=version)
    errors = _errors(rows)
    latency = pd.to_numeric(rows.get("latency_ms"), errors="coerce").dropna()
    tokens = pd.to_numeric(rows.get("completion_tokens"), errors="coerce").fillna(0)
    rated = feedback[feedback["request_id"].isin(set(rows["request_id"]))]
    scores = pd.to_numeric(rated["score"], errors="coerce").dropna()
    return VariantEvidence(
        version=version,
        requests=len(rows),
        errors=int(errors.sum()),
        latency_p50_ms=float(np.percentile(latency, 50)) if len(latency) else None,
        latency_p95_ms=float(np.percentile(latency, 95)) if len(latency) else None,
        completion_tokens=int(tokens.sum()),
        feedbacks=len(scores),
        positive=int((scores >= POSITIVE_SCORE).sum()),
        first_error_at=rows.loc[errors, "timestamp"].min() if errors.any() else None,
    )


def _errors(rows: pd.DataFrame) -> pd.Series:
    """Rows that failed: a non-empty `error` (absent before serving logged failures)."""
    if "error" not in rows:
        return pd.Series(False, index=rows.index)
    return rows["error"].notna() & (rows["error"].astype(str) != "")


def _share(evidence: VariantEvidence) -> str:
    return f"{evidence.positive}/{evidence.feedbacks}"


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


class ReleaseOutcome(BaseModel):
    """What one evaluation of a model's release found and did (the release flow's result)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    registered_model: str
    state: State | Literal["none"] = Field(
        description="'none': no release running; 'running': still watching; else how it ended."
    )
    version: str | None = None
    champion_version: str | None = None
    mode: Mode | None = None
    reasons: list[str] = Field(default_factory=list)
    probability: float | None = None
    evidence: ReleaseEvidence | None = None
    previous_champion: str | None = None
    ended_at: datetime | None = None

    @property
    def decided(self) -> bool:
        """Whether this evaluation ended the release."""
        return self.state not in ("none", "running")
