"""The pipeline summary's cost line: what this run spent, a reused run costing nothing."""

from llmops.model.cost import ComputeCost
from llmops.outputs import EvaluationReport, TrainedAdapter
from tasks.pipeline import cost_line

TRAINING = ComputeCost(device_seconds=3600.0, tokens=100_000, estimated=0.36)
EVALUATION = ComputeCost(device_seconds=360.0, tokens=5_000, estimated=0.036)


def trained(cost: ComputeCost | None, reused: bool = False) -> TrainedAdapter:
    return TrainedAdapter(
        training_run_id="t1",
        adapter_uri="runs:/t1/adapter",
        adapter_sha256="a" * 64,
        adapter_bytes=1,
        base_ref="tiny-random",
        base_sha256=None,
        config_fingerprint="f",
        dataset_id="d",
        dataset_uri="/d",
        run_uri="/runs/k",
        metrics={},
        reused=reused,
        cost=cost,
    )


def report(cost: ComputeCost | None, reused: bool = False) -> EvaluationReport:
    return EvaluationReport(
        run_id="e1",
        dataset_id="d",
        dataset_uri="/d",
        adapter_uri="runs:/t1/adapter",
        adapter_sha256="a" * 64,
        base_ref="tiny-random",
        base_sha256=None,
        training_run_id="t1",
        config_fingerprint="f",
        champion_version=None,
        examples=6,
        metrics={},
        intervals={},
        cost=cost,
        reused=reused,
    )


def test_the_cost_line_adds_training_and_evaluation() -> None:
    assert cost_line(trained(TRAINING), report(EVALUATION)) == (
        "Cost: 3960.0 device-s, 105,000 tokens, 0.3960 USD in all; "
        "training 3600.0 device-s, 100,000 tokens, 0.3600 USD, "
        "evaluation 360.0 device-s, 5,000 tokens, 0.0360 USD."
    )


def test_a_reused_training_run_costs_nothing_new_and_shows_what_it_cost() -> None:
    assert cost_line(trained(TRAINING, reused=True), report(EVALUATION)) == (
        "Cost: 360.0 device-s, 5,000 tokens, 0.0360 USD in all; "
        "training 0.0 device-s, 0 tokens, 0.0000 USD (reused run; it cost "
        "3600.0 device-s, 100,000 tokens, 0.3600 USD when trained), "
        "evaluation 360.0 device-s, 5,000 tokens, 0.0360 USD."
    )


def test_a_reused_evaluation_costs_nothing_new_either() -> None:
    assert cost_line(trained(TRAINING, reused=True), report(EVALUATION, reused=True)) == (
        "Cost: 0.0 device-s, 0 tokens, 0.0000 USD in all; "
        "training 0.0 device-s, 0 tokens, 0.0000 USD (reused run; it cost "
        "3600.0 device-s, 100,000 tokens, 0.3600 USD when trained), "
        "evaluation 0.0 device-s, 0 tokens, 0.0000 USD (reused run; it cost "
        "360.0 device-s, 5,000 tokens, 0.0360 USD when evaluated)."
    )


def test_outputs_recorded_before_cost_accounting_say_so() -> None:
    assert "not recorded" in cost_line(trained(None), report(EVALUATION))
