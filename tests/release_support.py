"""Simulated live traffic for release tests: registry versions without artifacts, and request
and feedback rows written to the inference log as `llmops serve` writes them."""

import uuid
from pathlib import Path

from llmops.model import registry
from llmops.serving.store import InferenceStore, utc_now
from llmops.tracking import mlflow_client


def register_versions(name: str, count: int = 2) -> list[str]:
    """`count` versions of `name` (no artifacts: the release flow reads only the registry);
    the first is champion, the last challenger."""
    client = mlflow_client()
    client.create_registered_model(name)
    versions = [
        str(client.create_model_version(name, source=f"file:///nowhere/{i}").version)
        for i in range(count)
    ]
    registry.set_alias(name, registry.CHAMPION, versions[0])
    registry.set_alias(name, registry.CHALLENGER, versions[-1])
    return versions


def serve_traffic(
    log_root: Path,
    variant: str,
    version: str,
    requests: int,
    liked: int = 0,
    disliked: int = 0,
    errors: int = 0,
    latency_ms: float = 50.0,
) -> None:
    """Log `requests` answers of one variant (the first `errors` failed), and feedback on the
    first `liked + disliked` of the rest, as `llmops serve` would."""
    log = InferenceStore(str(log_root))
    rows = [
        {
            "timestamp": utc_now(),
            "request_id": f"req-{uuid.uuid4().hex}",
            "model_version": version,
            "variant": variant,
            "endpoint": "chat",
            "latency_ms": latency_ms,
            "completion_tokens": 0 if i < errors else 8,
            "error": "server_error" if i < errors else None,
        }
        for i in range(requests)
    ]
    log.append_requests(rows)
    answered = [r for r in rows if r["error"] is None]
    for i, row in enumerate(answered[: liked + disliked]):
        score = 1.0 if i < liked else 0.0
        log.append_feedback(
            {
                "timestamp": utc_now(),
                "request_id": row["request_id"],
                "model_version": version,
                "rating": "up" if score else "down",
                "score": score,
                "correction": None,
            }
        )
