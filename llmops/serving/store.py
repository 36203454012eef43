"""The inference log and the feedback store: JSON Lines parts under a local folder or s3:// prefix.

Layout under the root (a path or any fsspec URL):
    requests/<YYYY-MM-DD>/<HHMMSS>-<uuid>.jsonl          one part per write (a group commit)
    feedback/<YYYY-MM-DD>/<HHMMSS>-<uuid>.jsonl          one part per feedback
    raw/<kind>/until-<YYYY-MM-DD>/<HHMMSS>-<uuid>.jsonl  unredacted copies, only when opted in
Object stores cannot append, so every write is a new immutable part; a restart therefore never
loses or rewrites what was logged before, and readers glob the parts.

Free text (messages, response, correction) passes through the same PII redactor as
`llmops prepare` before it is written, so the log never holds it in clear. A deployment may keep
raw text for a named number of days: those parts carry their keep-until date in their folder
name, so whoever enforces retention (`purge_expired`, run by the monitor flow) needs no setting
of the server that wrote them.
"""

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import fsspec
import pandas as pd

from llmops.data.pii import redact

REQUEST_COLUMNS = (
    "timestamp",
    "request_id",
    "model_version",
    "variant",
    "shadow",
    "endpoint",
    "key_name",
    "flagged",
    "messages",
    "response",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "error",
)
FEEDBACK_COLUMNS = ("timestamp", "request_id", "model_version", "rating", "score", "correction")
# The fields people type or the model writes; everything else is ids, numbers and timestamps.
TEXT_FIELDS = ("messages", "response", "correction")
RAW_FOLDER_PREFIX = "until-"


@dataclass(frozen=True)
class Purged:
    """What one retention pass deleted from one area of the store."""

    parts: int = 0
    records: int = 0


class InferenceStore:
    """Append-only request and feedback records under one root, redacted before they are written.

    `raw_retention_days` > 0 also writes the unredacted rows under raw/, kept that many days.
    """

    def __init__(self, root: str, raw_retention_days: int = 0) -> None:
        self.fs, self.root = fsspec.core.url_to_fs(root)
        self.protocol = (
            self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        )
        self.raw_retention_days = raw_retention_days

    def append_requests(self, rows: Iterable[dict[str, Any]]) -> None:
        """Write one part holding these request records, redacted (no-op for none)."""
        self._write("requests", list(rows))

    def append_feedback(self, row: dict[str, Any]) -> dict[str, Any]:
        """Write one part holding a feedback record; returns the record as stored (redacted)."""
        return self._write("feedback", [row])[0]

    def read_requests(self) -> pd.DataFrame:
        """Every logged request, oldest first."""
        return self._read("requests", REQUEST_COLUMNS)

    def read_answers(self) -> pd.DataFrame:
        """The answers users got: logged requests less failed ones and shadow copies (a shadow
        release's challenger answers, never returned), which drift and feedback must not count."""
        rows = self.read_requests()
        shadow = rows["shadow"].astype("boolean").fillna(False).astype(bool)
        return rows[rows["error"].isna() & ~shadow].reset_index(drop=True)

    def read_feedback(self) -> pd.DataFrame:
        """Every stored feedback, oldest first."""
        return self._read("feedback", FEEDBACK_COLUMNS)

    def find_request(self, request_id: str) -> dict[str, Any] | None:
        """The logged request with this id, or None."""
        requests = self.read_requests()
        match = requests[requests["request_id"] == request_id]
        return None if match.empty else match.iloc[-1].to_dict()

    def purge_expired(self, retention_days: int, today: date) -> dict[str, Purged]:
        """Delete request and feedback parts written more than `retention_days` days before
        `today`, and raw parts past their keep-until date; what went, by area."""
        cutoff = today - timedelta(days=retention_days)
        purged = {
            kind: self._purge_folders(f"{self.root}/{kind}/*", "", cutoff)
            for kind in ("requests", "feedback")
        }
        raw = f"{self.root}/raw/*/{RAW_FOLDER_PREFIX}*"
        purged["raw"] = self._purge_folders(raw, RAW_FOLDER_PREFIX, today)
        return purged

    def _write(self, kind: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Keep the raw rows if this deployment opted in, then write them redacted."""
        if not rows:
            return []
        now = datetime.now(UTC)
        if self.raw_retention_days > 0:
            until = now.date() + timedelta(days=self.raw_retention_days)
            self._write_part(f"raw/{kind}/{RAW_FOLDER_PREFIX}{until:%Y-%m-%d}", rows, now)
        stored = [redact_record(row) for row in rows]
        self._write_part(f"{kind}/{now:%Y-%m-%d}", stored, now)
        return stored

    def _write_part(self, folder: str, rows: list[dict[str, Any]], now: datetime) -> None:
        folder = f"{self.root}/{folder}"
        self.fs.makedirs(folder, exist_ok=True)
        path = f"{folder}/{now:%H%M%S%f}-{uuid.uuid4().hex[:8]}.jsonl"
        payload = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        with self.fs.open(path, "w", encoding="utf-8") as handle:
            handle.write(payload)

    def _purge_folders(self, pattern: str, prefix: str, before: date) -> Purged:
        """Delete the folders matching `pattern`, named `<prefix><YYYY-MM-DD>`, whose day is
        earlier than `before`; folders not named that way are left alone."""
        parts = records = 0
        for folder in self.fs.glob(pattern):
            try:
                name = folder.rstrip("/").rsplit("/", 1)[-1]
                day = date.fromisoformat(name.removeprefix(prefix))
            except ValueError:
                continue
            if day >= before:
                continue
            for path in self.fs.glob(f"{folder}/*.jsonl"):
                parts += 1
                records += sum(1 for line in self._lines(path) if line.strip())
            self.fs.rm(folder, recursive=True)
        return Purged(parts, records)

    def _lines(self, path: str) -> list[str]:
        with self.fs.open(path, "r", encoding="utf-8") as handle:
            return handle.readlines()

    def _read(self, kind: str, columns: tuple[str, ...]) -> pd.DataFrame:
        paths = sorted(self.fs.glob(f"{self.root}/{kind}/*/*.jsonl"))
        rows = [json.loads(line) for path in paths for line in self._lines(path) if line.strip()]
        frame = pd.DataFrame(rows, columns=list(columns))
        return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)


def redact_record(row: dict[str, Any]) -> dict[str, Any]:
    """The record with PII in its free-text fields replaced by typed placeholders."""
    return {key: redact_text(value) if key in TEXT_FIELDS else value for key, value in row.items()}


def redact_text(value: Any) -> Any:
    """Strings through `llmops.data.pii.redact` (the one `prepare` uses); lists and dicts (chat
    messages) walked; anything else unchanged."""
    if isinstance(value, str):
        return redact(value)[0]
    if isinstance(value, list):
        return [redact_text(item) for item in value]
    if isinstance(value, dict):
        return {key: redact_text(item) for key, item in value.items()}
    return value


def utc_now() -> str:
    """An ISO-8601 UTC timestamp, the form every stored record carries."""
    return datetime.now(UTC).isoformat()
