"""The watch flow on a real Prefect server: new and changed files fire once, restarts don't."""

import time
from pathlib import Path

from flows.watch import watch
from llmops.flow_configs import WatchConfig


def landed_events(path: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter

    with get_client(sync_client=True) as client:
        page = client.read_events(
            EventFilter(event=EventNameFilter(name=["llmops.dataset.landed"])), limit=50
        )
    return [e for e in page.events if e.payload.get("path") == path]


def test_new_and_changed_files_fire_once(tmp_path: Path, prefect_harness: None):
    landing = tmp_path / "landing"
    landing.mkdir()
    config = WatchConfig(landing=str(landing), state_file=str(tmp_path / "seen.json"))
    first = landing / "batch1.jsonl"
    first.write_text('{"prompt": "q", "response": "a"}\n')
    (landing / "notes.txt").write_text("not data")

    assert watch(config) == [str(first)]
    assert watch(config) == []  # a restart with nothing new
    first.write_text('{"prompt": "q2", "response": "a2"}\n')
    assert watch(config) == [str(first)]

    deadline = time.monotonic() + 30
    while len(landed_events(str(first))) < 2:
        assert time.monotonic() < deadline, "llmops.dataset.landed events did not arrive"
        time.sleep(0.5)
