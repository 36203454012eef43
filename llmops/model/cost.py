"""Compute cost of training and evaluation, and the training budget. Plain Python, no Prefect.

Cost is device time priced at an hourly rate per device kind: `device_seconds` is the wall
time of the work (the training loop; generation plus scoring) times the number of devices it
held, `estimated` is device hours x rate. Tokens are the non-padding tokens processed.

A training budget (`max_cost`, `max_device_seconds`) is enforced by `CostMeter`, a Trainer
callback in llmops/model/training.py, in two places:
- before the first step, from the planned steps and a known seconds-per-step (an earlier
  finished run of the same base model, device and batch shape), or, when there is none, after
  `warmup_steps` measured steps: a run projected to exceed the budget stops there;
- after every step, on what was really spent: a run that goes over the budget is aborted.
Device time spent by earlier attempts of the same run (killed, stopped, resumed) counts.
"""

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator

DeviceKind = Literal["cpu", "cuda", "mps"]

# Estimates, USD per device-hour, from public on-demand list prices (2024-25); override them
# per profile (`cost.device_hourly_rate`) with what your cloud or your amortised hardware costs.
#   cpu:  an 8-vCPU compute-optimised VM (AWS c7i.2xlarge, us-east-1: ~0.36/h)
#   cuda: one data-center GPU (A100/H100 class at GPU clouds: ~1.3-3/h; hyperscalers charge more)
#   mps:  an Apple-silicon host (AWS EC2 mac2.metal, M1: ~0.65/h)
DEFAULT_HOURLY_RATES: dict[DeviceKind, float] = {"cpu": 0.36, "cuda": 2.50, "mps": 0.65}


class CostSettings(BaseModel):
    """How device time is priced."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device_hourly_rate: dict[DeviceKind, float] = Field(
        default_factory=lambda: dict(DEFAULT_HOURLY_RATES),
        description="Price of one device-hour per device kind (default estimates: see "
        "llmops/model/cost.py).",
    )
    currency: str = Field("USD", min_length=1, description="Currency of the rates.")

    @field_validator("device_hourly_rate", mode="after")
    @classmethod
    def _rates_over_defaults(cls, rates: dict[DeviceKind, float]) -> dict[DeviceKind, float]:
        """A profile that prices one device kind keeps the default estimate of the others."""
        if any(rate < 0 for rate in rates.values()):
            raise ValueError("device_hourly_rate: rates must not be negative")
        return {**DEFAULT_HOURLY_RATES, **rates}

    def rate(self, device: str) -> float:
        """The hourly rate of a device kind (a kind without a rate costs 0, and says so)."""
        return self.device_hourly_rate.get(device, 0.0)  # type: ignore[call-overload]

    def price(self, device: str, device_seconds: float) -> float:
        """Estimated cost of `device_seconds` on `device`."""
        return device_seconds / 3600 * self.rate(device)


class ComputeCost(BaseModel):
    """Device time, tokens and their estimated price; what MLflow records as `cost.*`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device_seconds: float = 0.0
    tokens: int = 0
    estimated: float = 0.0
    currency: str = "USD"

    @classmethod
    def measured(
        cls, device: str, devices: int, wall_seconds: float, tokens: int, settings: CostSettings
    ) -> Self:
        """The cost of `wall_seconds` of work that held `devices` devices of kind `device`."""
        device_seconds = wall_seconds * devices
        return cls(
            device_seconds=device_seconds,
            tokens=tokens,
            estimated=settings.price(device, device_seconds),
            currency=settings.currency,
        )

    def plus(self, other: "ComputeCost") -> "ComputeCost":
        """Both costs together (priced at the rates each was measured at)."""
        return ComputeCost(
            device_seconds=self.device_seconds + other.device_seconds,
            tokens=self.tokens + other.tokens,
            estimated=self.estimated + other.estimated,
            currency=self.currency,
        )

    def metrics(self) -> dict[str, float]:
        """The MLflow metrics of this cost."""
        return {
            "cost.device_seconds": self.device_seconds,
            "cost.tokens": float(self.tokens),
            "cost.estimated": self.estimated,
        }

    def line(self) -> str:
        """One line for people: `12.3 device-s, 4,567 tokens, 0.0012 USD`."""
        return (
            f"{self.device_seconds:.1f} device-s, {self.tokens:,} tokens, "
            f"{self.estimated:.4f} {self.currency}"
        )


class TrainingBudget(BaseModel):
    """Limits on one training run's spend (both optional; no limit = no check)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_cost: float | None = Field(
        None, gt=0, description="Most estimated cost (in cost.currency) one run may spend."
    )
    max_device_seconds: float | None = Field(
        None, gt=0, description="Most device-seconds one run may spend."
    )
    warmup_steps: int = Field(
        3,
        ge=1,
        description="Steps measured for the projection when no earlier finished run of the same "
        "base model, device and batch shape gives a seconds-per-step.",
    )

    @property
    def is_set(self) -> bool:
        return self.max_cost is not None or self.max_device_seconds is not None

    def exceeded_limit(self, cost: ComputeCost) -> str | None:
        """The limit `cost` goes over ("max_cost 0.5 USD"), or None when within the budget."""
        if self.max_cost is not None and cost.estimated > self.max_cost:
            return f"max_cost {self.max_cost:g} {cost.currency}"
        if self.max_device_seconds is not None and cost.device_seconds > self.max_device_seconds:
            return f"max_device_seconds {self.max_device_seconds:g}"
        return None


class BudgetExceededError(RuntimeError):
    """A training run stopped by its budget; the message is the one-line reason."""

    def __init__(self, reason: str, spent: ComputeCost, step: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.spent = spent
        self.step = step  # the optimizer step it stopped at

    def __reduce__(self) -> tuple[type, tuple[str, ComputeCost, int]]:
        # Prefect may pickle a failed task's exception; the default would drop spent and step.
        return type(self), (self.reason, self.spent, self.step)
