"""The monitor flow on real Prefect, MLflow, embeddings and Evidently: no drift vs drift + event."""

import json
import time
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from monitoring_support import shifted_window, support_window
from prefect.artifacts import Artifact

from flows.monitor import monitor
from llmops.flow_configs import MonitorConfig
from llmops.records import instruction_to_messages
from llmops.serving.store import InferenceStore, utc_now


def _write_reference(root: Path, window: pd.DataFrame) -> Path:
    """A prepared-dataset folder (manifest + splits) holding these prompt/response pairs."""
    folder = root / "datasets" / "support-v1"
    folder.mkdir(parents=True)
    records = pd.DataFrame(
        {
            "record_id": [f"r{i}" for i in range(len(window))],
            "source": [f"sample.jsonl:{i + 1}" for i in range(len(window))],
            "messages": [
                instruction_to_messages(p, r)
                for p, r in zip(window.prompt, window.response, strict=True)
            ],
        }
    )
    half = len(records) // 2
    splits = {"train": folder / "train.parquet", "eval": folder / "eval.parquet"}
    records.iloc[:half].to_parquet(splits["train"])
    records.iloc[half:].to_parquet(splits["eval"])
    manifest = {"dataset_id": "support-v1", "counts": {"accepted": len(records)}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _log_traffic(home: Path, window: pd.DataFrame) -> str:
    """Write the window to the inference log the way the server does, with some feedback."""
    log = str(home / "inference")
    store = InferenceStore(log)
    rows = [
        {
            "timestamp": utc_now(),
            "request_id": f"req-{i}",
            "model_version": "1",
            "endpoint": "chat",
            "messages": [{"role": "user", "content": prompt}],
            "response": response,
            "prompt_tokens": 20,
            "completion_tokens": 8,
            "latency_ms": 100.0 + i,
        }
        for i, (prompt, response) in enumerate(zip(window.prompt, window.response, strict=True))
    ]
    store.append_requests(rows)
    store.append_feedback(
        {
            "timestamp": utc_now(),
            "request_id": "req-0",
            "model_version": "1",
            "rating": "up",
            "score": 1.0,
            "correction": None,
        }
    )
    return log


def _config(home: Path, dataset: Path, log: str) -> MonitorConfig:
    return MonitorConfig.from_profile(
        "tiny", reference_dataset=str(dataset), inference_log=log, experiment="monitor-test"
    )


def _drift_events(run_id: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter

    with get_client(sync_client=True) as client:
        page = client.read_events(
            EventFilter(event=EventNameFilter(name=["llmops.drift.detected"])), limit=50
        )
    return [e for e in page.events if e.payload.get("mlflow_run_id") == run_id]


def test_monitor_same_distribution_reports_no_drift(
    prefect_harness: None, llmops_home: Path
) -> None:
    dataset = _write_reference(llmops_home, support_window(120, seed=1))
    log = _log_traffic(llmops_home, support_window(80, seed=2))
    result = monitor(_config(llmops_home, dataset, log))
    assert result["drift_detected"] is False
    assert result["event_emitted"] is False
    assert Path(result["report_html"]).exists() and Path(result["report_json"]).exists()
    run = mlflow.get_run(result["run_id"])
    assert run.data.metrics["drift_detected"] == 0.0
    assert run.data.metrics["traffic.requests"] == 80
    assert run.data.metrics["traffic.feedback_rate"] == pytest.approx(1 / 80)
    finding = Artifact.get("drift-finding")
    assert finding is not None and "No drift" in finding.data
    assert result["retention"]["requests"] == {"parts": 0, "records": 0}


def test_monitor_shifted_traffic_reports_drift_and_emits_event(
    prefect_harness: None, llmops_home: Path
) -> None:
    dataset = _write_reference(llmops_home, support_window(120, seed=1))
    log = _log_traffic(llmops_home, shifted_window(80, seed=3))
    result = monitor(_config(llmops_home, dataset, log))  # drift is a finding: the run succeeds
    assert result["drift_detected"] is True
    assert result["embedding_auc"] > 0.9
    assert mlflow.get_run(result["run_id"]).data.metrics["embedding_drift_auc"] > 0.9
    assert "EmbeddingsDrift" in Path(result["report_json"]).read_text()
    deadline = time.monotonic() + 30
    while not (events := _drift_events(result["run_id"])):
        assert time.monotonic() < deadline, "no llmops.drift.detected event"
        time.sleep(0.5)
    assert "embedding drift" in events[0].payload["reason"]


def test_monitor_with_too_little_traffic_fails_clearly(
    prefect_harness: None, llmops_home: Path
) -> None:
    dataset = _write_reference(llmops_home, support_window(60, seed=1))
    log = _log_traffic(llmops_home, support_window(3, seed=2))
    with pytest.raises(ValueError, match="current window has 3 rows"):
        monitor(_config(llmops_home, dataset, log))


def _old_part(root: Path, folder: str, request_ids: list[str]) -> Path:
    """A part written long ago, as the server lays them out (the store only writes today's)."""
    part = root / folder / "000000000000-0000aaaa.jsonl"
    part.parent.mkdir(parents=True)
    part.write_text("".join(json.dumps({"request_id": r}) + "\n" for r in request_ids))
    return part


def test_monitor_deletes_expired_traffic_first_and_counts_it(
    prefect_harness: None, llmops_home: Path
) -> None:
    dataset = _write_reference(llmops_home, support_window(60, seed=1))
    log = _log_traffic(llmops_home, support_window(3, seed=2))
    inference = Path(log)
    expired = [
        _old_part(inference, "requests/2000-01-01", ["old-1", "old-2"]),
        _old_part(inference, "feedback/2000-01-02", ["old-1"]),
        _old_part(inference, "raw/requests/until-2000-01-08", ["old-1", "old-2"]),
    ]
    kept_raw = _old_part(inference, "raw/feedback/until-2999-01-01", ["new-1"])
    # Too little traffic fails the drift check, but only after the retention pass.
    with pytest.raises(ValueError, match="current window has 3 rows"):
        monitor(_config(llmops_home, dataset, log))
    assert not any(part.parent.exists() for part in expired)
    assert kept_raw.exists()
    assert len(InferenceStore(log).read_requests()) == 3  # today's traffic is within 30 days
    finding = Artifact.get("inference-retention")
    assert finding is not None
    assert "## Retention: 5 records deleted" in finding.data
    for row in ("| requests | 1 | 2 |", "| feedback | 1 | 1 |", "| raw | 1 | 2 |"):
        assert row in finding.data


def test_monitor_profiles_validate() -> None:
    for profile in ("tiny", "cpu", "gpu"):
        assert MonitorConfig.from_profile(profile).min_rows >= 10
