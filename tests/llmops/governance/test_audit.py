"""The audit trail is one hash chain: tampering of any kind shows, concurrent writers keep it."""

import json
import multiprocessing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmops.cli import app
from llmops.governance.audit import AuditLog


def _write(path: str, writer: int, count: int) -> None:
    log = AuditLog(Path(path))
    for i in range(count):
        log.append(f"writer-{writer}", "test.append", f"entry {i}", "m", str(i))


def _rewrite(path: Path, change) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(row) + "\n" for row in change(rows)))


@pytest.fixture
def trail(tmp_path: Path) -> AuditLog:
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(5):
        log.append("cli:tester", "promotion.promoted", f"reason {i}", "m", str(i + 1))
    return log


def test_an_untouched_chain_verifies(trail: AuditLog) -> None:
    report = trail.verify()
    assert report.intact and report.entries == 5
    assert [e.seq for e in trail.entries()] == [1, 2, 3, 4, 5]
    assert trail.entries()[1].prev == trail.entries()[0].hash


def _edit_reason(rows: list[dict]) -> list[dict]:
    rows[2]["reason"] = "nothing to see here"
    return rows


def _drop(rows: list[dict]) -> list[dict]:
    return rows[:1] + rows[2:]


def _swap(rows: list[dict]) -> list[dict]:
    return [rows[0], rows[2], rows[1], *rows[3:]]


def _drop_and_renumber(rows: list[dict]) -> list[dict]:
    kept = rows[:1] + rows[2:]
    for seq, row in enumerate(kept, start=1):
        row["seq"] = seq
    return kept


@pytest.mark.parametrize(
    ("tamper", "broken_at"),
    [(_edit_reason, 3), (_drop, 2), (_swap, 2), (_drop_and_renumber, 2)],
    ids=["edited", "dropped", "reordered", "dropped-and-renumbered"],
)
def test_tampering_breaks_the_chain_where_it_happened(trail: AuditLog, tamper, broken_at) -> None:
    _rewrite(trail.path, tamper)
    report = trail.verify()
    assert not report.intact and report.broken_at == broken_at and report.entries == broken_at - 1


def test_concurrent_writers_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write, args=(str(path), w, 25)) for w in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
    log = AuditLog(path)
    assert log.verify().intact and len(log.entries()) == 100


def test_cli_prints_the_history_and_verifies(llmops_home: Path) -> None:
    log = AuditLog()
    log.append("cli:tester", "promotion.promoted", "better on rougeL", "assistant", "3")
    log.append("cli:tester", "key.created", "key 'ci' (inference) created")
    runner = CliRunner()
    shown = runner.invoke(app, ["audit", "--model", "assistant"])
    assert shown.exit_code == 0 and "promotion.promoted assistant v3" in shown.output
    assert "key.created" not in shown.output
    assert "intact: 2 entries" in runner.invoke(app, ["audit", "verify"]).output
    _rewrite(log.path, _edit_reason_first)
    broken = runner.invoke(app, ["audit", "verify"])
    assert broken.exit_code == 1 and "BROKEN at line 1" in broken.output


def _edit_reason_first(rows: list[dict]) -> list[dict]:
    rows[0]["reason"] = "edited"
    return rows
