"""The inference log and feedback store: append-only parts that survive a restart, free text
redacted before it is written, raw text only when opted in, and retention that deletes."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from llmops.serving.store import InferenceStore, Purged, utc_now


def _request(request_id: str) -> dict:
    return {
        "timestamp": utc_now(),
        "request_id": request_id,
        "model_version": "3",
        "endpoint": "chat",
        "messages": [{"role": "user", "content": "q"}],
        "response": "a",
        "prompt_tokens": 5,
        "completion_tokens": 1,
        "latency_ms": 12.5,
    }


def test_log_survives_a_new_store_instance(tmp_path: Path) -> None:
    InferenceStore(str(tmp_path)).append_requests([_request("a"), _request("b")])
    restarted = InferenceStore(str(tmp_path))
    restarted.append_requests([_request("c")])
    assert restarted.read_requests()["request_id"].tolist() == ["a", "b", "c"]
    assert restarted.find_request("b")["messages"] == [{"role": "user", "content": "q"}]
    assert restarted.find_request("zz") is None


def test_empty_store_reads_empty_frames_with_columns(tmp_path: Path) -> None:
    store = InferenceStore(str(tmp_path / "nothing-yet"))
    store.append_requests([])
    assert store.read_requests().empty and "request_id" in store.read_requests()
    assert store.read_feedback().empty and "score" in store.read_feedback()


def test_works_on_an_fsspec_url() -> None:
    store = InferenceStore("memory://llmops-test/inference")
    store.append_requests([_request("m1")])
    store.append_feedback(
        {
            "timestamp": utc_now(),
            "request_id": "m1",
            "model_version": "3",
            "rating": "up",
            "score": 1.0,
            "correction": None,
        }
    )
    assert store.read_feedback()["request_id"].tolist() == ["m1"]


def _feedback(request_id: str, correction: str | None) -> dict:
    return {
        "timestamp": utc_now(),
        "request_id": request_id,
        "model_version": "3",
        "rating": "down",
        "score": 0.0,
        "correction": correction,
    }


def _written_text(root: Path) -> str:
    return "".join(p.read_text() for p in sorted(root.rglob("*.jsonl")))


def test_free_text_is_redacted_before_it_is_written(tmp_path: Path) -> None:
    store = InferenceStore(str(tmp_path))
    row = _request("r1")
    row["messages"] = [
        {"role": "system", "content": "Card on file: 4111 1111 1111 1111."},
        {"role": "user", "content": "Mail me at jane.doe@example.com or +1 (415) 555-0132"},
    ]
    row["response"] = "Your IBAN DE89 3704 0044 0532 0130 00 is saved; IP 203.0.113.42 logged."
    store.append_requests([row])
    stored = store.append_feedback(_feedback("r1", "Write to tom.becker@example.org instead."))

    logged = store.find_request("r1")
    assert [m["content"] for m in logged["messages"]] == [
        "Card on file: [CREDIT_CARD].",
        "Mail me at [EMAIL] or [PHONE]",
    ]
    assert logged["response"] == "Your IBAN [IBAN] is saved; IP [IP_ADDRESS] logged."
    assert stored["correction"] == "Write to [EMAIL] instead."
    assert store.read_feedback()["correction"].tolist() == ["Write to [EMAIL] instead."]
    # Ids, counts and the roles are not free text and stay as they were.
    assert logged["request_id"] == "r1" and logged["prompt_tokens"] == 5
    text = _written_text(tmp_path)
    for raw in ("4111", "jane.doe", "555-0132", "DE89", "203.0.113.42", "tom.becker"):
        assert raw not in text
    assert not (tmp_path / "raw").exists()


def test_raw_text_is_kept_apart_only_when_a_retention_window_is_set(tmp_path: Path) -> None:
    store = InferenceStore(str(tmp_path), raw_retention_days=7)
    row = _request("r1")
    row["response"] = "call 415-555-0199"
    store.append_requests([row])
    store.append_feedback(_feedback("r1", "mail jane.doe@example.com"))
    until = datetime.now(UTC).date() + timedelta(days=7)
    raw = sorted(p.relative_to(tmp_path).parent.as_posix() for p in tmp_path.rglob("raw/*/*/*"))
    assert raw == [f"raw/feedback/until-{until}", f"raw/requests/until-{until}"]
    raw_text = _written_text(tmp_path / "raw")
    assert "415-555-0199" in raw_text and "jane.doe@example.com" in raw_text
    assert store.find_request("r1")["response"] == "call [PHONE]"  # readers see redacted text


def test_purge_deletes_what_outlived_its_retention(tmp_path: Path) -> None:
    store = InferenceStore(str(tmp_path), raw_retention_days=3)
    store.append_requests([_request("a"), _request("b")])
    store.append_feedback(_feedback("a", None))
    (tmp_path / "requests" / "not-a-date").mkdir()  # a folder of someone else's: left alone
    today = datetime.now(UTC).date()

    assert store.purge_expired(30, today + timedelta(days=3)) == {
        "requests": Purged(),
        "feedback": Purged(),
        "raw": Purged(),
    }
    assert store.purge_expired(30, today + timedelta(days=4))["raw"] == Purged(2, 3)
    assert not list((tmp_path / "raw").rglob("*.jsonl"))
    assert store.read_requests()["request_id"].tolist() == ["a", "b"]  # within 30 days

    assert store.purge_expired(30, today + timedelta(days=31)) == {
        "requests": Purged(1, 2),
        "feedback": Purged(1, 1),
        "raw": Purged(),
    }
    assert store.read_requests().empty and store.read_feedback().empty
    assert (tmp_path / "requests" / "not-a-date").is_dir()


def test_purge_works_on_an_fsspec_url() -> None:
    store = InferenceStore("memory://llmops-purge/inference", raw_retention_days=1)
    store.append_requests([_request("m1")])
    later = datetime.now(UTC).date() + timedelta(days=2)
    purged = store.purge_expired(1, later)
    assert purged["requests"] == Purged(1, 1) and purged["raw"] == Purged(1, 1)
    assert store.read_requests().empty
