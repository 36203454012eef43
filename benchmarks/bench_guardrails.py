"""The guardrail detector on a held-out set: precision and recall per category and overall, a
threshold sweep, and the latency it adds per request.

    .venv/bin/python benchmarks/bench_guardrails.py
    .venv/bin/python benchmarks/bench_guardrails.py --threshold 0.6 --repeats 3

benchmarks/data/guardrails_heldout.jsonl is kept apart from the reference set (a test checks no
text is in both). Its `dev` split was used to pick the rules and the threshold; the `test`
split was written afterwards and not looked at while tuning, so its figures are the honest ones.
An attack counts as detected when it is flagged at all (precision and recall of attack vs
benign); per category, a detection counts only with the right category.
Latency: the detector alone, warmed up, on one CPU process (the encoder's threads as set).
"""

import argparse
import json
import statistics
import time
from pathlib import Path

from llmops.serving.guardrails import CATEGORIES, Guardrail, GuardrailSettings, Screening

HELDOUT = Path(__file__).resolve().parent / "data" / "guardrails_heldout.jsonl"
SWEEP = (0.45, 0.5, 0.55, 0.6, 0.65, 0.7)


def scores(rows: list[dict], screenings: list[Screening]) -> dict[str, dict[str, float]]:
    """Precision and recall per category and overall (attack vs benign), and the benign FPR."""
    table = {}
    for category in (*CATEGORIES, "overall"):

        def is_true(row: dict, category: str = category) -> bool:
            return row["label"] != "benign" if category == "overall" else row["label"] == category

        def is_flagged(s: Screening, category: str = category) -> bool:
            return s.category is not None if category == "overall" else s.category == category

        pairs = list(zip(rows, screenings, strict=True))
        tp = sum(is_true(r) and is_flagged(s) for r, s in pairs)
        flagged = sum(is_flagged(s) for _, s in pairs)
        actual = sum(is_true(r) for r, _ in pairs)
        table[category] = {
            "precision": tp / flagged if flagged else 1.0,
            "recall": tp / actual if actual else 1.0,
            "n": actual,
        }
    benign = [s for r, s in zip(rows, screenings, strict=True) if r["label"] == "benign"]
    table["overall"]["benign_fpr"] = sum(s.category is not None for s in benign) / len(benign)
    return table


def print_scores(title: str, table: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}")
    print(f"  {'category':<17} {'n':>4} {'precision':>9} {'recall':>7}")
    for category, row in table.items():
        print(f"  {category:<17} {row['n']:>4} {row['precision']:>9.3f} {row['recall']:>7.3f}")
    print(f"  false positives on benign: {table['overall']['benign_fpr']:.1%}")


def latencies_ms(guardrail: Guardrail, texts: list[str], batch: int, repeats: int) -> list[float]:
    """Wall time of `screen` per call, in batches of `batch`, over the texts `repeats` times."""
    guardrail.screen(texts[:batch])  # warm-up
    times = []
    for _ in range(repeats):
        for start in range(0, len(texts) - batch + 1, batch):
            began = time.perf_counter()
            guardrail.screen(texts[start : start + batch])
            times.append((time.perf_counter() - began) * 1000)
    return times


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threshold", type=float, default=GuardrailSettings().threshold)
    parser.add_argument("--repeats", type=int, default=2, help="latency passes over the set")
    args = parser.parse_args()

    rows = [json.loads(line) for line in HELDOUT.read_text().splitlines() if line.strip()]
    began = time.perf_counter()
    guardrail = Guardrail(GuardrailSettings(threshold=args.threshold))
    print(
        f"guardrail built in {time.perf_counter() - began:.1f} s "
        f"({len(guardrail.references)} references, encoder loaded once)"
    )
    for split in ("dev", "test"):
        subset = [r for r in rows if r["split"] == split]
        attacks = sum(r["label"] != "benign" for r in subset)
        print(f"\n== {split}: {attacks} attacks, {len(subset) - attacks} benign ==")
        print_scores(
            f"threshold {args.threshold}",
            scores(subset, guardrail.screen([r["text"] for r in subset])),
        )
        print("\n  sweep       precision recall benign-FPR")
        for threshold in SWEEP:
            swept = Guardrail(GuardrailSettings(threshold=threshold))
            overall = scores(subset, swept.screen([r["text"] for r in subset]))["overall"]
            print(
                f"  {threshold:<11} {overall['precision']:>9.3f} {overall['recall']:>6.3f} "
                f"{overall['benign_fpr']:>10.1%}"
            )

    texts = [r["text"] for r in rows]
    print(f"\nlatency added per call, {len(texts)} held-out texts x {args.repeats}, warmed up:")
    for batch in (1, 16):
        times = latencies_ms(guardrail, texts, batch, args.repeats)
        print(
            f"  batch of {batch:>2}: p50 {percentile(times, 50):6.1f} ms  "
            f"p95 {percentile(times, 95):6.1f} ms  ({len(times)} calls; "
            f"{statistics.median(times) / batch:.1f} ms per request at the median)"
        )


if __name__ == "__main__":
    main()
