"""Per-key limits of `llmops serve`: requests per minute and tokens per UTC day.

Counted in the server process (one event loop: an admission check and its charge run with no
await between them, so concurrent clients cannot both take the last slot). Several replicas
behind a balancer would need shared counters (Redis, e.g. through the `limits` package); one
replica is what `llmops serve` runs. Hand-written because a token budget must be reserved before
generation and settled after it, which rate-limit libraries (`limits`, slowapi) do not offer.
"""

import math
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

WINDOW_S = 60.0


class QuotaExceededError(Exception):
    """Over a limit: `retry_after_s` is when a retry can succeed."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass
class _Usage:
    recent: deque[float] = field(default_factory=deque)  # admission times, last WINDOW_S
    day: str = ""
    tokens: int = 0  # settled tokens today
    reserved: int = 0  # upper bounds of requests still generating


class Quotas:
    """Admit requests within each key's limits; settle their tokens when they finish."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.usage: dict[str, _Usage] = defaultdict(_Usage)

    def admit(
        self, key: str, requests_per_minute: int | None, tokens_per_day: int | None, bound: int
    ) -> int:
        """Count a request for `key` that may use up to `bound` tokens; returns the tokens
        reserved (to pass to `settle`). Raises QuotaExceededError when over a limit."""
        usage = self.usage[key]
        now = self.clock()
        while usage.recent and usage.recent[0] <= now - WINDOW_S:
            usage.recent.popleft()
        if requests_per_minute is not None and len(usage.recent) >= requests_per_minute:
            wait = usage.recent[0] + WINDOW_S - now
            raise QuotaExceededError(
                f"key {key!r} is over its {requests_per_minute} requests per minute",
                max(1, math.ceil(wait)),
            )
        reserve = 0
        if tokens_per_day is not None:
            self._roll_day(usage)
            if usage.tokens + usage.reserved + bound > tokens_per_day:
                spent = usage.tokens + usage.reserved
                raise QuotaExceededError(
                    f"key {key!r} has {max(0, tokens_per_day - spent)} of its {tokens_per_day} "
                    f"tokens per day left; this request may need {bound}",
                    _seconds_to_midnight(),
                )
            reserve = bound
            usage.reserved += reserve
        usage.recent.append(now)
        return reserve

    def settle(self, key: str, reserved: int, used: int) -> None:
        """Replace a request's reservation with the tokens it used (0 if it failed)."""
        usage = self.usage[key]
        usage.reserved -= reserved
        usage.tokens += used

    def _roll_day(self, usage: _Usage) -> None:
        today = datetime.now(UTC).date().isoformat()
        if usage.day != today:
            usage.day, usage.tokens = today, 0


def _seconds_to_midnight() -> int:
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    return max(1, math.ceil((midnight - now).total_seconds()))


def token_bound(prompt_text: str, messages: int, max_tokens: int) -> int:
    """An upper bound on a request's tokens before it is tokenized: a byte-level BPE token
    (SmolLM2, Llama, GPT-2 families) covers at least one byte, and a chat template adds a
    handful of tokens per message."""
    return len(prompt_text.encode()) + 16 * messages + max_tokens
