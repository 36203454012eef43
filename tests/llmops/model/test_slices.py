"""Per-slice grouping and intervals on planted scores (plain functions, no Prefect)."""

import pytest

from llmops.model.slices import (
    MISSING,
    length_bucket,
    mlflow_key,
    slice_members,
    slice_results,
)


def test_length_buckets_start_at_the_bounds() -> None:
    assert [length_bucket(w, (3, 6)) for w in (0, 2, 3, 5, 6, 40)] == [
        "short",
        "short",
        "medium",
        "medium",
        "long",
        "long",
    ]


def test_members_by_field_missing_value_and_length() -> None:
    metadata = [
        {"topic": "billing", "language": "en"},
        [("topic", "login")],  # a Parquet map comes back as key-value pairs
        {"topic": "billing", "language": None},  # a Parquet struct fills absent keys with None
        None,
    ]
    references = ["one two", "one two three four", "a b c d e f g", "x"]
    members = slice_members(metadata, references, ["topic", "language"], (3, 6))
    assert members == {
        ("language", MISSING): [1, 2, 3],
        ("language", "en"): [0],
        ("response_length", "long"): [2],
        ("response_length", "medium"): [1],
        ("response_length", "short"): [0, 3],
        ("topic", MISSING): [3],
        ("topic", "billing"): [0, 2],
        ("topic", "login"): [1],
    }


def test_results_count_means_and_paired_interval_per_slice() -> None:
    members = {("topic", "billing"): [0, 1, 2], ("topic", "login"): [3, 4]}
    per_example = {
        "candidate": {"rougeL": [0.9, 0.8, 0.7, 0.1, 0.1], "mean_response_length": [5.0] * 5},
        "champion": {"rougeL": [0.5, 0.5, 0.5, 0.4, 0.4], "mean_response_length": [7.0] * 5},
        "base": {"rougeL": [0.0] * 5, "mean_response_length": [1.0] * 5},
    }
    billing, login = slice_results(members, per_example, "champion", n_resamples=200)
    assert (billing.name, billing.count, login.count) == ("topic=billing", 3, 2)
    assert billing.means["candidate"]["rougeL"] == pytest.approx(0.8)
    assert billing.means["base"]["mean_response_length"] == 1.0
    # Only directional metrics get an interval; login's gain is a constant -0.3.
    assert set(billing.intervals) == {"rougeL"} and billing.compared_to == "champion"
    assert billing.intervals["rougeL"].diff == pytest.approx(0.3)
    assert billing.intervals["rougeL"].low <= 0.3 <= billing.intervals["rougeL"].high
    ci = login.intervals["rougeL"]
    assert (ci.diff, ci.low, ci.high) == pytest.approx((-0.3, -0.3, -0.3))


def test_mlflow_key_replaces_what_mlflow_refuses() -> None:
    assert mlflow_key("topic", "billing") == "slice.topic:billing"
    assert mlflow_key("segment", "B2B/EU=1+") == "slice.segment:B2B_EU_1_"
    assert mlflow_key("language", "../..") == "slice.language:___"
