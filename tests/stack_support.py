"""Helpers for tests against the local stack (`llmops up`) on a real Prefect server.

Run as a script, it emits llmops events with the project's own emitters, from a clean process:
the test session's Prefect settings point at its test harness, and Prefect keeps one events
worker per process, so events for another server must come from another process.

    python -P tests/stack_support.py feedback 60   # 60 x llmops.feedback.received
    python -P tests/stack_support.py drift 1       # llmops.drift.detected
"""

import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

MODEL = "llmops-test-assistant"  # the tiny profiles' registered model


def api(base_url: str, method: str, path: str, body: dict | None = None) -> Any:
    """One call to the Prefect server's REST API (JSON in, JSON out)."""
    response = httpx.request(method, f"{base_url}/api{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def flow_runs(base_url: str, deployment_id: str) -> list[dict]:
    """Every flow run of a deployment."""
    body = {"deployments": {"id": {"any_": [deployment_id]}}, "limit": 200}
    return api(base_url, "POST", "/flow_runs/filter", body)


def deployment(base_url: str, flow: str, name: str) -> dict:
    return api(base_url, "GET", f"/deployments/name/{flow}/{name}")


def event_times(base_url: str, event: str) -> list[datetime]:
    """When the first 50 `event`s occurred (the API pages by 50), oldest first."""
    body = {"filter": {"event": {"name": [event]}, "order": "ASC"}, "limit": 50}
    return [
        parse_time(e["occurred"]) for e in api(base_url, "POST", "/events/filter", body)["events"]
    ]


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def wait_for(what: str, check: Callable[[], Any], timeout_s: float, every_s: float = 1.0) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def runs_with_reason(base_url: str, deployment_id: str, reason: str) -> list[dict]:
    """Runs of the retrain deployment whose config says why they started."""
    return [
        run
        for run in flow_runs(base_url, deployment_id)
        if run["parameters"].get("config", {}).get("reason") == reason
    ]


def emit(kind: str, count: int) -> None:
    """Emit `count` events of `kind` with the functions serving and monitoring use."""
    from prefect.events.worker import EventsWorker

    from llmops.monitoring.drift import DriftDecision
    from tasks.feedback import emit_feedback_event
    from tasks.monitoring import emit_drift_event

    for i in range(count):
        if kind == "feedback":
            row = {"request_id": f"req-{i}", "rating": "up", "score": 1.0, "correction": None}
            emit_feedback_event({**row, "model_version": "1"}, MODEL)
        else:
            shifted = DriftDecision(True, 0.97, ["length"], ["embedding drift (test)"])
            emit_drift_event.fn(shifted, MODEL, "test-run", "report.html")
    EventsWorker.drain_all()


if __name__ == "__main__":
    emit(sys.argv[1], int(sys.argv[2]))
