"""Per-slice evaluation: the per-example scores of a whole evaluation, grouped into slices.

A slice is the examples that share one value of a data-contract slice field (the record's
`metadata`, e.g. topic=billing) or one length bucket of the reference answer
(response_length=short|medium|long). Each slice gets its count, every model's means, and the
paired bootstrap CI of candidate minus the compared model per directional metric, so a model
that improves on average while it gets worse on one topic is visible (and can be gated).
No generation happens here: the scores are the ones the evaluation already computed.
"""

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from llmops.model.metrics import METRIC_DIRECTIONS, Interval, compare, summarize

LENGTH_FIELD = "response_length"
MISSING = "(missing)"  # the value of a slice field a record does not have


@dataclass(frozen=True)
class SliceResult:
    """One slice: how many examples, each model's means, candidate minus `compared_to`."""

    field: str
    value: str
    count: int
    compared_to: str  # "champion" or "base"
    means: dict[str, dict[str, float]]  # model label -> metric -> mean over the slice
    intervals: dict[str, Interval]  # directional metric -> CI of candidate - compared_to

    @property
    def name(self) -> str:
        """How people read the slice: field=value."""
        return f"{self.field}={self.value}"


def length_bucket(words: int, bounds: tuple[int, int]) -> str:
    """short below bounds[0] words, long from bounds[1] words, medium between."""
    short_end, long_start = bounds
    if words < short_end:
        return "short"
    return "medium" if words < long_start else "long"


def slice_members(
    metadata: Sequence[Mapping[str, str] | Iterable[tuple[str, str]] | None],
    references: Sequence[str],
    fields: Sequence[str],
    length_bounds: tuple[int, int],
) -> dict[tuple[str, str], list[int]]:
    """(field, value) -> indices of the examples in that slice, sorted by field and value.

    `metadata[i]` is record i's metadata: a dict, key-value pairs (how Parquet maps come
    back), or None; a field it lacks puts the record in the field's MISSING slice, so records
    without the field are counted rather than silently left out.
    """
    members: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, (meta, reference) in enumerate(zip(metadata, references, strict=True)):
        values = dict(meta) if meta is not None else {}
        for name in fields:
            members[(name, str(values.get(name) or MISSING))].append(index)
        bucket = length_bucket(len(reference.split()), length_bounds)
        members[(LENGTH_FIELD, bucket)].append(index)
    return dict(sorted(members.items()))


def slice_results(
    members: Mapping[tuple[str, str], Sequence[int]],
    per_example: Mapping[str, Mapping[str, Sequence[float]]],
    compared_to: str,
    confidence: float = 0.95,
    n_resamples: int = 1000,
) -> list[SliceResult]:
    """Means of every model (`per_example`: label -> metric -> per-example values, aligned
    with the indices) and CIs of "candidate" minus `compared_to` on each slice."""
    results = []
    for (field, value), indices in members.items():
        subset = {
            label: {m: [values[i] for i in indices] for m, values in scores.items()}
            for label, scores in per_example.items()
        }
        directional = {m: v for m, v in subset["candidate"].items() if METRIC_DIRECTIONS.get(m)}
        results.append(
            SliceResult(
                field,
                value,
                len(indices),
                compared_to,
                {label: summarize(scores) for label, scores in subset.items()},
                compare(directional, subset[compared_to], confidence, n_resamples),
            )
        )
    return results


def mlflow_key(field: str, value: str) -> str:
    """`slice.<field>:<value>`: MLflow metric names refuse "=" (and anything outside letters,
    digits, _ - . space), so those become "_" and ":" joins field and value."""
    return f"slice.{safe_name(field)}:{safe_name(value)}"


def safe_name(text: str) -> str:
    """`text` as part of an MLflow metric name: refused characters become "_"."""
    # Dots are allowed but ".." could make a name MLflow treats as a path: keep single dots.
    return re.sub(r"\.{2,}", "_", re.sub(r"[^\w\-. ]", "_", text))
