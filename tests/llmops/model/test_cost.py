"""Cost arithmetic and the training budget's callback, on a fake clock and a fake Trainer state
(no model): projections before the first step and after the warm-up, abort while running."""

from types import SimpleNamespace

import pytest
from transformers import TrainerControl, TrainerState

import llmops.model.training
from llmops.model.cost import BudgetExceededError, ComputeCost, CostSettings, TrainingBudget
from llmops.model.training import CostMeter

RATES = CostSettings(device_hourly_rate={"cpu": 0.36, "cuda": 2.0})


class Clock:
    """Stands in for time.perf_counter: moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(llmops.model.training.time, "perf_counter", fake)
    return fake


def args(device: str = "cpu", world_size: int = 1, n_gpu: int = 0) -> SimpleNamespace:
    return SimpleNamespace(device=SimpleNamespace(type=device), world_size=world_size, n_gpu=n_gpu)


def state(max_steps: int = 10, step: int = 0, tokens: int = 0) -> TrainerState:
    return TrainerState(max_steps=max_steps, global_step=step, num_input_tokens_seen=tokens)


def run_steps(meter: CostMeter, s: TrainerState, clock: Clock, steps: int, seconds: float) -> None:
    for _ in range(steps):
        clock.now += seconds
        s.global_step += 1
        s.num_input_tokens_seen += 50
        meter.on_step_end(args(), s, TrainerControl())


def test_cost_is_device_hours_times_the_rate() -> None:
    cost = ComputeCost.measured("cuda", 2, 900.0, 1234, RATES)
    assert cost.device_seconds == 1800.0 and cost.tokens == 1234
    assert cost.estimated == pytest.approx(1800.0 / 3600 * 2.0)
    assert cost.metrics() == {
        "cost.device_seconds": 1800.0,
        "cost.tokens": 1234.0,
        "cost.estimated": pytest.approx(1.0),
    }
    assert cost.plus(cost).estimated == pytest.approx(2.0)
    assert cost.line() == "1800.0 device-s, 1,234 tokens, 1.0000 USD"


def test_a_profile_that_prices_one_device_keeps_the_other_defaults() -> None:
    assert RATES.rate("mps") == CostSettings().rate("mps") > 0
    assert RATES.rate("xpu") == 0.0
    with pytest.raises(ValueError, match="negative"):
        CostSettings(device_hourly_rate={"cpu": -1.0})


def test_the_meter_counts_devices_tokens_and_earlier_attempts(clock: Clock) -> None:
    earlier = ComputeCost.measured("cpu", 1, 10.0, 100, RATES)
    seen: list[tuple[ComputeCost, int]] = []
    meter = CostMeter(RATES, spent_before=earlier, sink=lambda c, step: seen.append((c, step)))
    s = state(step=4, tokens=400)  # resumed at step 4
    meter.on_train_begin(args("cuda", world_size=2, n_gpu=1), s, TrainerControl())
    clock.now += 30.0
    s.global_step, s.num_input_tokens_seen = 6, 600
    meter.on_log(args(), s, TrainerControl(), logs={})
    spent, step = seen[-1]
    assert step == 6 and spent.tokens == 100 + 200
    assert spent.device_seconds == pytest.approx(10.0 + 30.0 * 2)
    assert spent.estimated == pytest.approx(10.0 / 3600 * 0.36 + 60.0 / 3600 * 2.0)
    assert meter.seconds_per_step(s) == pytest.approx(15.0)


def test_a_known_throughput_stops_the_run_before_its_first_step(clock: Clock) -> None:
    meter = CostMeter(RATES, TrainingBudget(max_device_seconds=50), seconds_per_step=6.0)
    with pytest.raises(BudgetExceededError) as stopped:
        meter.on_train_begin(args(), state(max_steps=10), TrainerControl())
    assert stopped.value.step == 0
    assert str(stopped.value) == (
        "budget: projected 60.0 device-s, 0.0060 USD (0.0 spent + 10 steps x 6.00 s/step x "
        "1 device(s), s/step from an earlier finished run) exceeds max_device_seconds 50; "
        "stopped at step 0 of 10"
    )
    # Within the budget, it starts.
    CostMeter(RATES, TrainingBudget(max_device_seconds=70), seconds_per_step=6.0).on_train_begin(
        args(), state(max_steps=10), TrainerControl()
    )


def test_without_a_known_throughput_the_warmup_steps_decide(clock: Clock) -> None:
    budget = TrainingBudget(max_cost=0.005, warmup_steps=2)  # 0.005 USD = 50 cpu device-s
    meter = CostMeter(RATES, budget)
    s = state(max_steps=10)
    meter.on_train_begin(args(), s, TrainerControl())
    run_steps(meter, s, clock, 1, 6.0)  # nothing projected after one step
    with pytest.raises(BudgetExceededError, match="from the first 2 steps") as stopped:
        run_steps(meter, s, clock, 1, 6.0)  # 12 s spent + 8 x 6 s = 60 s > 50 s
    assert stopped.value.step == 2 and stopped.value.spent.device_seconds == pytest.approx(12.0)
    assert "exceeds max_cost 0.005 USD" in str(stopped.value)


def test_a_run_over_its_budget_while_running_is_aborted(clock: Clock) -> None:
    # The projection from the first 2 steps (3 s/step) passes; step 5 turns slow.
    meter = CostMeter(RATES, TrainingBudget(max_device_seconds=40, warmup_steps=2))
    s = state(max_steps=10)
    meter.on_train_begin(args(), s, TrainerControl())
    run_steps(meter, s, clock, 4, 3.0)
    with pytest.raises(BudgetExceededError) as stopped:
        run_steps(meter, s, clock, 1, 30.0)
    assert str(stopped.value) == (
        "budget: spent 42.0 device-s, 250 tokens, 0.0042 USD, over max_device_seconds 40; "
        "aborted at step 5 of 10"
    )


def test_a_resumed_run_counts_what_earlier_attempts_spent(clock: Clock) -> None:
    earlier = ComputeCost(device_seconds=45.0)
    meter = CostMeter(RATES, TrainingBudget(max_device_seconds=40), spent_before=earlier)
    with pytest.raises(BudgetExceededError, match="earlier attempts of this run spent"):
        meter.on_train_begin(args(), state(step=4), TrainerControl())


def test_no_budget_never_stops(clock: Clock) -> None:
    meter = CostMeter(RATES)
    s = state(max_steps=3)
    meter.on_train_begin(args(), s, TrainerControl())
    run_steps(meter, s, clock, 3, 1000.0)
    assert meter.spent(s).device_seconds == pytest.approx(3000.0)
