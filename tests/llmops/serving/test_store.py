"""The inference log and feedback store: append-only parts that survive a restart."""

from pathlib import Path

from llmops.serving.store import InferenceStore, utc_now


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
