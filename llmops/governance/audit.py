"""The audit trail: who promoted, rolled back, approved, rejected, changed a key or called an
admin endpoint, when, on which model version, and why.

An append-only JSON Lines file in the project home (`<home>/audit.jsonl`). Each entry carries the
hash of the one before it and its own hash over its content, so an edited, dropped or reordered
entry breaks the chain, and `llmops audit verify` says where. Appends hold a lock file, so
concurrent writers on a host keep one chain. Entries about a model version are mirrored to its
MLflow version tags (`audit.<seq>`), and entries written inside a flow run to a Prefect artifact,
so the history is visible where the models and the runs are.
"""

import getpass
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock
from pydantic import BaseModel, ConfigDict

from llmops.home import home_path

GENESIS = "0" * 64


class AuditEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int
    time: str
    actor: str
    action: str
    model: str | None = None
    version: str | None = None
    reason: str = ""
    prev: str
    hash: str = ""

    def content_hash(self) -> str:
        body = self.model_dump(exclude={"hash"})
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class ChainReport(BaseModel):
    """What `verify` found: how many entries hold, and the first that does not."""

    entries: int
    intact: bool
    broken_at: int | None = None
    problem: str = ""


class AuditLog:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or home_path("audit.jsonl")

    def append(
        self,
        actor: str,
        action: str,
        reason: str = "",
        model: str | None = None,
        version: str | None = None,
    ) -> AuditEntry:
        """Chain a new entry to the last one and write it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{self.path}.lock"):
            last = self._last()
            entry = AuditEntry(
                seq=last.seq + 1 if last else 1,
                time=datetime.now(UTC).isoformat(timespec="milliseconds"),
                actor=actor,
                action=action,
                model=model,
                version=version,
                reason=reason,
                prev=last.hash if last else GENESIS,
            )
            entry = entry.model_copy(update={"hash": entry.content_hash()})
            with self.path.open("a") as log:
                log.write(entry.model_dump_json() + "\n")
        return entry

    def entries(self, model: str | None = None) -> list[AuditEntry]:
        if not self.path.exists():
            return []
        rows = [AuditEntry.model_validate_json(line) for line in self._lines()]
        return [e for e in rows if model is None or e.model == model]

    def verify(self) -> ChainReport:
        """Recompute the chain from the first entry; the first entry that does not hold ends it."""
        prev, count = GENESIS, 0
        for number, line in enumerate(self._lines() if self.path.exists() else [], start=1):
            try:
                entry = AuditEntry.model_validate_json(line)
            except ValueError:
                return ChainReport(
                    entries=count, intact=False, broken_at=number, problem="unreadable"
                )
            if entry.seq != number:
                problem = f"sequence {entry.seq} where {number} belongs (dropped or reordered)"
            elif entry.prev != prev:
                problem = "does not follow the entry before it (dropped, inserted or reordered)"
            elif entry.content_hash() != entry.hash:
                problem = "content changed after it was written"
            else:
                prev, count = entry.hash, count + 1
                continue
            return ChainReport(entries=count, intact=False, broken_at=number, problem=problem)
        return ChainReport(entries=count, intact=True)

    def _lines(self) -> list[str]:
        return [line for line in self.path.read_text().splitlines() if line.strip()]

    def _last(self) -> AuditEntry | None:
        lines = self._lines() if self.path.exists() else []
        return AuditEntry.model_validate_json(lines[-1]) if lines else None


def current_actor() -> str:
    """Who acts when no API key names them: the flow run, else the user at the shell."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is not None and context.flow_run is not None:
        return f"flow-run:{context.flow_run.name} ({context.flow_run.id})"
    return f"cli:{getpass.getuser()}"


def record(
    action: str,
    reason: str = "",
    model: str | None = None,
    version: str | None = None,
    actor: str | None = None,
) -> AuditEntry:
    """Append to the audit trail and mirror the entry to the version's MLflow tags and, inside a
    flow run, to the `audit-trail` Prefect artifact."""
    entry = AuditLog().append(actor or current_actor(), action, reason, model, version)
    if model and version:
        from llmops.model import registry

        registry.tag_version(model, version, {f"audit.{entry.seq}": _one_line(entry)})
    _publish(entry)
    return entry


def _one_line(entry: AuditEntry) -> str:
    return f"{entry.time} {entry.action} by {entry.actor}: {entry.reason}"[:5000]


def _publish(entry: AuditEntry) -> None:
    from prefect.artifacts import create_table_artifact
    from prefect.context import FlowRunContext

    if FlowRunContext.get() is None:
        return
    row = entry.model_dump(exclude={"prev"})
    create_table_artifact([row], key="audit-trail", description=f"audit: {entry.action}")
