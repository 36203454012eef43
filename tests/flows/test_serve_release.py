"""`llmops serve` during a release of the challenger, on loopback: a sticky canary share within
binomial bounds, shadow copies that users never see, per-variant metrics, and the challenger
dropped when the release ends, all without a restart."""

import subprocess
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
from serving_support import LLMOPS, register_talking_champion, running_serve, serve_environment
from stack_support import wait_for

from llmops.release import ended, new_release, write_release

MODEL = "released-assistant"
pytestmark = pytest.mark.slow


@dataclass
class Served:
    base_url: str
    home: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Iterator[Served]:
    from llmops.model import registry

    home = tmp_path_factory.mktemp("released")
    env = serve_environment(home)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMOPS_HOME", env["LLMOPS_HOME"])
        mp.setenv("MLFLOW_TRACKING_URI", env["MLFLOW_TRACKING_URI"])
        # Two adapters that answer differently: champion v1, challenger v2.
        register_talking_champion(MODEL, home, seed=4, scale=1.0)
        challenger = register_talking_champion(MODEL, home, seed=11, scale=1.0)
        registry.set_alias(MODEL, registry.CHAMPION, "1")
        registry.set_alias(MODEL, registry.CHALLENGER, challenger)
        args = ["--no-api-key", "--registered-model", MODEL, "--guardrails", "off"]
        with running_serve(home, env, *args) as base_url:
            yield Served(base_url, home, env)


def _challenger_served(served: Served, expected: str | None) -> bool:
    health = httpx.get(f"{served.base_url}/health", timeout=5).json()
    return (
        (health["challenger"] or {}).get("mode") == expected
        if expected
        else not health["challenger"]
    )


def _chat(served: Served, text: str, user: str | None = None) -> httpx.Response:
    body = {"model": MODEL, "max_tokens": 6, "messages": [{"role": "user", "content": text}]}
    if user:
        body["user"] = user
    return httpx.post(f"{served.base_url}/v1/chat/completions", json=body, timeout=120)


def test_a_canary_answers_a_sticky_share_of_users(served: Served) -> None:
    write_release(new_release(MODEL, "2", "1", "canary", 0.2))
    wait_for("the challenger to load", lambda: _challenger_served(served, "canary"), 60, 0.2)
    users = [f"user-{n}" for n in range(500)]
    with ThreadPoolExecutor(16) as pool:
        first = list(pool.map(lambda u: _chat(served, f"Hello from {u}", u), users))
        again = list(pool.map(lambda u: _chat(served, "Hello again", u), users[:100]))
    variants = [r.headers["x-llmops-variant"] for r in first]
    share = variants.count("challenger") / len(variants)
    print(f"canary 20%: {variants.count('challenger')} of 500 users got the challenger")
    # Binomial(500, 0.2): mean 100, sd 8.9; +-4 sd.
    assert 64 <= variants.count("challenger") <= 136, share
    assert [r.headers["x-llmops-variant"] for r in again] == variants[:100]  # sticky per user
    versions = {r.headers["x-llmops-variant"]: r.json()["system_fingerprint"] for r in first}
    assert versions == {"champion": "v1", "challenger": "v2"}
    metrics = httpx.get(f"{served.base_url}/metrics").text
    assert (
        'llmops_variant_requests_total{outcome="answered",shadow="false",variant="challenger"}'
        in metrics
    )


def test_in_shadow_mode_users_never_receive_challenger_text(served: Served) -> None:
    from llmops.serving.store import InferenceStore

    write_release(new_release(MODEL, "2", "1", "shadow", 0.0))
    wait_for("the shadow release", lambda: _challenger_served(served, "shadow"), 60, 0.2)
    prompts = [f"Tell me about order {n}" for n in range(24)]
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda p: _chat(served, p), prompts))
    assert {r.headers["x-llmops-variant"] for r in replies} == {"champion"}
    ids = {r.json()["id"]: r.json()["choices"][0]["message"]["content"] for r in replies}
    store = InferenceStore(str(served.home / "inference"))

    def shadow_rows() -> list[pd.DataFrame]:
        rows = store.read_requests().set_index("request_id")
        return [rows] if {f"{i}-shadow" for i in ids} <= set(rows.index) else []

    [rows] = wait_for("every shadow copy to be answered and logged", shadow_rows, 60, 0.5)
    differs = 0
    for request_id, returned in ids.items():
        assert rows.loc[request_id, "response"] == returned
        assert rows.loc[request_id, "variant"] == "champion"
        shadow = rows.loc[f"{request_id}-shadow"]
        assert shadow["variant"] == "challenger" and bool(shadow["shadow"])
        assert shadow["model_version"] == "2"
        differs += shadow["response"] != returned
    # The two adapters answer differently, so a leak of challenger text would show.
    assert differs > 0


def test_an_ended_release_drops_the_challenger(served: Served) -> None:
    from llmops.release import read_release

    write_release(ended(read_release(MODEL), "stopped", "test over"))
    wait_for("the challenger to be dropped", lambda: _challenger_served(served, None), 60, 0.2)
    variants = Counter(
        _chat(served, "Hi", f"user-{n}").headers["x-llmops-variant"] for n in range(20)
    )
    assert variants == Counter({"champion": 20})


def test_a_release_started_from_the_cli_is_decided_on_live_feedback(served: Served) -> None:
    """`llmops release start --watch` runs the release flow every 2 s (tiny profile) against the
    Prefect server while users, who prefer the challenger, rate the answers they get; the flow
    promotes it, and the server then answers with it alone."""
    from serving_support import wait_for_event

    start = [str(LLMOPS), "release", "start", "--profile", "tiny", "--registered-model", MODEL]
    watcher = subprocess.Popen(
        [*start, "--mode", "canary", "--share", "0.5", "--watch"],
        env=served.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for("the canary", lambda: _challenger_served(served, "canary"), 90, 0.2)

        def rate(n: int) -> str:
            reply = _chat(served, f"Where is parcel {n}?", f"buyer-{n}")
            variant = reply.headers["x-llmops-variant"]
            rating = "up" if variant == "challenger" else "down"
            body = {"request_id": reply.json()["id"], "rating": rating}
            httpx.post(f"{served.base_url}/v1/feedback", json=body, timeout=60).raise_for_status()
            return variant

        with ThreadPoolExecutor(8) as pool:
            rated = Counter(pool.map(rate, range(60)))
        output, _ = watcher.communicate(timeout=180)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert watcher.returncode == 0, output
    assert "release promoted" in output, output
    assert rated["challenger"] >= 10 and rated["champion"] >= 10, rated
    event = wait_for_event("llmops.release.decided", "version", "2")
    assert event.payload
    wait_for("the promoted challenger alone", lambda: _serving(served, "v2"), 60, 0.2)


def _serving(served: Served, fingerprint: str) -> bool:
    health = httpx.get(f"{served.base_url}/health", timeout=5).json()
    return f"v{health['version']}" == fingerprint and health["challenger"] is None
