"""The inference log and the feedback store: JSON Lines parts under a local folder or s3:// prefix.

Layout under the root (a path or any fsspec URL):
    requests/<YYYY-MM-DD>/<HHMMSS>-<uuid>.jsonl   one part per served batch
    feedback/<YYYY-MM-DD>/<HHMMSS>-<uuid>.jsonl   one part per feedback
Object stores cannot append, so every write is a new immutable part; a restart therefore never
loses or rewrites what was logged before, and readers glob the parts.
"""

import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import fsspec
import pandas as pd

REQUEST_COLUMNS = (
    "timestamp",
    "request_id",
    "model_version",
    "endpoint",
    "messages",
    "response",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
)
FEEDBACK_COLUMNS = ("timestamp", "request_id", "model_version", "rating", "score", "correction")


class InferenceStore:
    """Append-only request and feedback records under one root."""

    def __init__(self, root: str) -> None:
        self.fs, self.root = fsspec.core.url_to_fs(root)
        self.protocol = (
            self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        )

    def append_requests(self, rows: Iterable[dict[str, Any]]) -> None:
        """Write one part holding these request records (no-op for none)."""
        self._write_part("requests", list(rows))

    def append_feedback(self, row: dict[str, Any]) -> None:
        """Write one part holding a feedback record."""
        self._write_part("feedback", [row])

    def read_requests(self) -> pd.DataFrame:
        """Every logged request, oldest first."""
        return self._read("requests", REQUEST_COLUMNS)

    def read_feedback(self) -> pd.DataFrame:
        """Every stored feedback, oldest first."""
        return self._read("feedback", FEEDBACK_COLUMNS)

    def find_request(self, request_id: str) -> dict[str, Any] | None:
        """The logged request with this id, or None."""
        requests = self.read_requests()
        match = requests[requests["request_id"] == request_id]
        return None if match.empty else match.iloc[-1].to_dict()

    def _write_part(self, kind: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        now = datetime.now(UTC)
        folder = f"{self.root}/{kind}/{now:%Y-%m-%d}"
        self.fs.makedirs(folder, exist_ok=True)
        path = f"{folder}/{now:%H%M%S%f}-{uuid.uuid4().hex[:8]}.jsonl"
        payload = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        with self.fs.open(path, "w", encoding="utf-8") as handle:
            handle.write(payload)

    def _read(self, kind: str, columns: tuple[str, ...]) -> pd.DataFrame:
        paths = sorted(self.fs.glob(f"{self.root}/{kind}/*/*.jsonl"))
        rows = []
        for path in paths:
            with self.fs.open(path, "r", encoding="utf-8") as handle:
                rows.extend(json.loads(line) for line in handle if line.strip())
        frame = pd.DataFrame(rows, columns=list(columns))
        return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)


def utc_now() -> str:
    """An ISO-8601 UTC timestamp, the form every stored record carries."""
    return datetime.now(UTC).isoformat()
