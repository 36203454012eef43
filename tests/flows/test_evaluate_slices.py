"""Slices, the bias probe and slice gating through the real evaluate and promote flows: tiny
model, Prefect harness, MLflow on SQLite."""

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from model_support import make_tiny_adapter, write_tiny_dataset

from flows.evaluate import evaluate
from flows.promote import promote
from llmops.datasets import encode_split
from llmops.flow_configs import EvaluateConfig, PromoteConfig
from llmops.model import registry
from llmops.model.gate import SliceRegression
from llmops.model.metrics import Interval
from llmops.model.slices import SliceResult
from llmops.outputs import EvaluationReport
from tasks.evaluation import save_evaluation_report
from tasks.registry import decide_promotion

# Held-out metadata: 3 billing + 5 login; every other record has a language, the rest lack it.
TOPICS = ["billing"] * 3 + ["login"] * 5


def write_sliced_dataset(root: Path) -> Path:
    """The tiny dataset with 8 held-out records carrying metadata, and a contract that names
    topic and language as slices."""
    folder = write_tiny_dataset(root, n_train=16, n_eval=8)
    held_out = pd.read_parquet(folder / "eval.parquet")
    held_out["metadata"] = [
        {"topic": t} | ({"language": "en"} if i % 2 else {}) for i, t in enumerate(TOPICS)
    ]
    (folder / "eval.parquet").write_bytes(encode_split(held_out))
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps(manifest | {"slices": ["topic", "language"]}))
    return folder


def test_evaluate_reports_slices_and_the_bias_probe(
    tmp_path: Path, llmops_home: Path, prefect_harness: None
) -> None:
    from prefect.artifacts import Artifact

    adapter_dir, _ = make_tiny_adapter(tmp_path / "candidate", seed=5, scale=0.5)
    config = EvaluateConfig.from_profile(
        "tiny",
        dataset=str(write_sliced_dataset(tmp_path / "datasets")),
        adapter=str(adapter_dir),
        bias_probe=True,
        bias_probe_max_new_tokens=4,
        batch_size=32,
    )
    report = evaluate(config)

    counts = {s.name: s.count for s in report.slices}
    assert counts == {
        "language=(missing)": 4,
        "language=en": 4,
        "response_length=short": 8,  # every reference answer has 7 words
        "topic=billing": 3,
        "topic=login": 5,
    }
    # A slice's means are the per-example scores of its records: check against the outputs.
    outputs = mlflow.artifacts.download_artifacts(
        run_id=report.run_id, artifact_path="eval_outputs.json"
    )
    table = json.loads(Path(outputs).read_text())
    rouge = [row[table["columns"].index("candidate_rougeL")] for row in table["data"]]
    billing = next(s for s in report.slices if s.name == "topic=billing")
    assert billing.compared_to == "base" and set(billing.means) == {"candidate", "base"}
    assert billing.means["candidate"]["rougeL"] == pytest.approx(np.mean(rouge[:3]))
    assert {"rougeL", "eval_loss"} <= set(billing.intervals)
    logged = mlflow.get_run(report.run_id).data.metrics
    assert logged["slice.topic:billing.count"] == 3
    assert logged["slice.language:_missing_.count"] == 4
    assert logged["slice.topic:login.diff_vs_base.eval_loss"] == pytest.approx(
        next(s for s in report.slices if s.name == "topic=login").intervals["eval_loss"].diff
    )
    assert "topic=billing" in str(Artifact.get("evaluation-slices").data)

    # The probe: 8 templates; 2 names per origin, 6 per gender, 1 filler per age group.
    assert set(report.fairness) == {"candidate", "base"}
    groups = {(g.attribute, g.group): g.n for g in report.fairness["candidate"].groups}
    assert len(groups) == 6 + 2 + 3
    assert groups[("origin", "arab")] == 16 and groups[("gender", "female")] == 48
    assert groups[("age", "60_and_over")] == 8
    probe = report.fairness["candidate"]
    origin = [g.answer_length for g in probe.groups if g.attribute == "origin"]
    assert probe.spreads["origin"]["answer_length"] == pytest.approx(max(origin) - min(origin))
    assert logged["fairness.candidate.origin.answer_length_spread"] == pytest.approx(
        probe.spreads["origin"]["answer_length"]
    )
    assert "fairness.base.age:under_30.refusal_rate" in logged
    assert "SPREAD" in str(Artifact.get("evaluation-fairness").data)
    assert EvaluationReport.model_validate(report.model_dump(mode="json")) == report

    # Probe answers are cached on the models' hashes like scores: a new evaluation (another
    # bootstrap; the same settings would reuse this one whole) generates nothing.
    again = evaluate(config.model_copy(update={"n_resamples": 300}))
    assert again.run_id != report.run_id
    assert again.fairness == report.fairness
    assert again.cost is not None and again.cost.device_seconds == 0


def test_promote_rejects_a_candidate_worse_on_one_slice(
    tmp_path: Path, llmops_home: Path, prefect_harness: None
) -> None:
    adapter_dir, base = make_tiny_adapter(tmp_path / "candidate", seed=6)
    promote_config = PromoteConfig.from_profile("tiny")
    # Better on average (eval loss -0.5, significant), but 0.3 worse on billing's 12 examples.
    loss = Interval(-0.5, -0.6, -0.4)
    report = EvaluationReport(
        run_id="planted-slices",
        dataset_id="d",
        dataset_uri="d",
        adapter_uri=str(adapter_dir),
        adapter_sha256="s",
        base_ref=base.ref,
        base_sha256=base.sha256,
        training_run_id=None,
        config_fingerprint=None,
        champion_version=None,
        examples=40,
        metrics={"candidate": {"eval_loss": 2.0}, "base": {"eval_loss": 2.5}},
        intervals={"base": {"eval_loss": loss}},
        slices=[
            SliceResult("topic", "billing", 12, "base", {}, {"eval_loss": Interval(0.3, 0.1, 0.5)}),
            SliceResult("topic", "login", 28, "base", {}, {"eval_loss": Interval(-0.8, -1, -0.6)}),
        ],
    )
    save_evaluation_report.fn(promote_config.store_url(), report)

    guard = SliceRegression(min_examples=10, max_drop=0.1)
    gate = promote_config.gate.model_copy(update={"max_slice_regression": guard})
    rejected = promote(
        promote_config.model_copy(update={"evaluation_run_id": report.run_id, "gate": gate})
    )

    assert rejected.verdict == "rejected"
    assert "slice topic=billing: eval_loss drops 0.3000 > 0.1 vs base (n=12)" in rejected.reasons
    name = promote_config.registered_model
    assert registry.alias_version(name, registry.CHAMPION) is None
    assert "slice topic=billing" in registry.version_tags(name, rejected.version)["gate_reasons"]
    # Without the guard (the profile's gate) the same results pass: the slice made the difference.
    assert decide_promotion.fn(promote_config.gate, report).passed
