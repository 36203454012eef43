"""Watch a live release of the challenger and decide it: one evaluation per run.

    llmops release start --profile cpu      # canary of the challenger against the champion
    llmops release start --watch            # ... and evaluate every interval until decided

The `release-watch` deployment runs this every `evaluation_interval_s` and after feedback
arrives. With no release running it does nothing; with one running it gathers both variants'
evidence from the inference log and applies the rule (llmops/release_rule.py): a guard breach
(errors, latency) rolls the challenger back at once, a clear quality win promotes it, a clear
loss or a spent budget rejects it. A decision emits `llmops.release.decided` and publishes the
`release-decision` artifact with the evidence and the rule.
"""

from prefect import flow

from llmops.flow_configs import ReleaseConfig
from llmops.release_rule import ReleaseOutcome
from tasks.release import (
    emit_release_decided,
    judge_release,
    load_release,
    load_release_traffic,
    measure_release,
    publish_release_decision,
    save_release_decision,
    waiting_outcome,
)


@flow(name="release", log_prints=True)
def release(config: ReleaseConfig) -> ReleaseOutcome:
    """Read the running release and its evidence, apply the rule, end it if the rule says so."""
    current = load_release(config.registered_model)
    if current is None or not current.running:
        print(f"no release running on {config.registered_model}")
        return waiting_outcome(current, config.registered_model)
    requests, feedback = load_release_traffic(config.inference_log_url())
    evidence = measure_release(requests, feedback, current)
    verdict = judge_release(config.rule, evidence, current)
    if verdict.state == "running":
        print("; ".join(verdict.reasons))
        return waiting_outcome(current, config.registered_model, verdict, evidence)
    outcome = save_release_decision(current, verdict, evidence)
    if outcome.decided:
        print(publish_release_decision(outcome, config.rule))
        emit_release_decided(outcome, config.rule)
    return outcome
