"""`llmops serve` end to end: the real OpenAI client against the real server on loopback.

One server process (the CLI, running the `serve` flow) for the module; its MLflow store is a temp
project home that this test process also writes to, to register versions and move the alias.
"""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from net_support import free_port
from serving_support import TALKING_SEED, register_talking_champion, wait_for_event

MODEL = "serve-test-assistant"
KEY = "test-key-123"
pytestmark = pytest.mark.slow


@dataclass
class Server:
    base_url: str
    home: Path
    client: openai.OpenAI


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Iterator[Server]:
    from prefect.settings import PREFECT_API_URL

    home = tmp_path_factory.mktemp("serve-home")
    env = {
        # The harness's server, so the test can read back the events the server process emits.
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        **os.environ,
        "LLMOPS_HOME": str(home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        "LLMOPS_API_KEY": KEY,
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMOPS_HOME", env["LLMOPS_HOME"])
        mp.setenv("MLFLOW_TRACKING_URI", env["MLFLOW_TRACKING_URI"])
        # A perturbed adapter: the tiny base alone answers only whitespace (empty text).
        register_talking_champion(MODEL, home, seed=TALKING_SEED, scale=1.0)
        port = free_port()
        cmd = [sys.executable, "-m", "llmops.cli", "serve", "--profile", "tiny"]
        cmd += ["--port", str(port), "--registered-model", MODEL]
        log = (home / "server.log").open("w")
        process = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        base_url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(base_url, process, home / "server.log")
            client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=KEY, max_retries=0)
            yield Server(base_url, home, client)
        finally:
            process.terminate()
            process.wait(timeout=60)
            log.close()


def _wait_healthy(base_url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.5)
    raise TimeoutError(log.read_text()[-3000:])


def test_chat_completion_answers_and_reports_usage(server: Server) -> None:
    reply = server.client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "How do I reset my password?"}]
    )
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.usage.completion_tokens >= 1
    assert reply.usage.prompt_tokens > 5
    assert reply.id.startswith("req-")


def test_chat_streams_token_by_token_and_matches_the_non_streamed_answer(server: Server) -> None:
    messages = [{"role": "user", "content": "Where is the export button?"}]
    whole = server.client.chat.completions.create(model=MODEL, messages=messages, max_tokens=32)
    started = time.perf_counter()
    stream = server.client.chat.completions.create(
        model=MODEL,
        messages=messages,
        max_tokens=32,
        stream=True,
        stream_options={"include_usage": True},
    )
    arrivals, chunks = [], []
    for chunk in stream:
        arrivals.append(time.perf_counter() - started)
        chunks.append(chunk)
    content = [
        (at, c.choices[0].delta.content)
        for at, c in zip(arrivals, chunks, strict=True)
        if c.choices and c.choices[0].delta.content
    ]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len(content) > 1
    assert "".join(piece for _, piece in content) == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens == 32
    assert chunks[-2].system_fingerprint == whole.system_fingerprint
    # Streamed as generated, the pieces are spread over the 32 decoding steps; sent after the
    # answer was complete (time to first token == latency), they would all land within ~1 ms.
    first, last = content[0][0], content[-1][0]
    print(f"first piece {first * 1000:.0f} ms, last {last * 1000:.0f} ms")
    assert last - first > last / 4


def test_completions_stream_too(server: Server) -> None:
    whole = server.client.completions.create(model=MODEL, prompt="Billing is", max_tokens=8)
    chunks = list(
        server.client.completions.create(
            model=MODEL, prompt="Billing is", max_tokens=8, stream=True
        )
    )
    pieces = [c.choices[0].text for c in chunks if c.choices[0].text]
    assert len(pieces) > 1 and "".join(pieces) == whole.choices[0].text
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason


def test_completions_and_models(server: Server) -> None:
    reply = server.client.completions.create(model=MODEL, prompt="Billing is", max_tokens=4)
    assert reply.choices[0].finish_reason in {"stop", "length"}
    assert 1 <= reply.usage.completion_tokens <= 4
    models = server.client.models.list().data
    assert [m.id for m in models] == [MODEL]


def test_wrong_key_is_401(server: Server) -> None:
    wrong = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert httpx.get(f"{server.base_url}/v1/models").status_code == 401


def test_oversized_requests_get_clear_4xx(server: Server) -> None:
    huge = [{"role": "user", "content": "x" * 20_000}]  # over the tiny profile's 8 KiB body cap
    with pytest.raises(openai.APIStatusError) as too_big:
        server.client.chat.completions.create(model=MODEL, messages=huge)
    assert too_big.value.status_code == 413
    with pytest.raises(openai.UnprocessableEntityError, match="max_tokens"):
        server.client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=10_000
        )
    long_prompt = [{"role": "user", "content": "word " * 1000}]  # under 8 KiB, over 256 tokens
    with pytest.raises(openai.APIStatusError) as too_long:
        server.client.chat.completions.create(model=MODEL, messages=long_prompt)
    assert too_long.value.status_code == 413
    assert "tokens" in too_long.value.message
    with pytest.raises(openai.APIStatusError) as too_long_streamed:  # refused before streaming
        server.client.chat.completions.create(model=MODEL, messages=long_prompt, stream=True)
    assert too_long_streamed.value.status_code == 413


def test_metrics_count_requests_and_tokens(server: Server) -> None:
    hi = [{"role": "user", "content": "hi"}]
    server.client.chat.completions.create(model=MODEL, messages=hi)
    list(server.client.chat.completions.create(model=MODEL, messages=hi, stream=True))
    text = httpx.get(f"{server.base_url}/metrics").text
    assert 'llmops_time_to_first_token_seconds_count{endpoint="chat"} ' in text
    assert 'llmops_requests_total{endpoint="chat",status="200"}' in text
    assert 'llmops_tokens_total{kind="completion"}' in text
    assert "llmops_request_latency_seconds_bucket" in text
    assert "llmops_batch_size_count" in text


def test_feedback_round_trip_emits_event_and_exports_a_record(server: Server) -> None:
    from tasks.feedback import export_feedback

    question = [{"role": "user", "content": "How do I get a refund?"}]
    reply = server.client.chat.completions.create(model=MODEL, messages=question)
    stored = server.client.post(
        "/feedback",
        body={
            "request_id": reply.id,
            "rating": "down",
            "corrected_answer": "Open Billing, choose Refund.",
        },
        cast_to=httpx.Response,
    ).json()
    assert stored["stored"] and stored["model_version"] == reply.system_fingerprint[1:]
    with pytest.raises(openai.NotFoundError):
        server.client.post(
            "/feedback", body={"request_id": "req-nope", "rating": "up"}, cast_to=dict
        )

    out = server.home / "export" / "feedback.jsonl"
    result = export_feedback.fn(str(server.home / "inference"), str(out))
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert result == 1
    assert records == [
        {
            "id": f"feedback-{reply.id}",
            "messages": [
                *question,
                {"role": "assistant", "content": "Open Billing, choose Refund."},
            ],
        }
    ]
    mine = wait_for_event("llmops.feedback.received", "request_id", reply.id)
    assert mine.resource["llmops.model.version"] == stored["model_version"]
    assert mine.payload["has_correction"] is True


def test_inference_log_keeps_every_request(server: Server) -> None:
    from llmops.serving.store import InferenceStore

    reply = server.client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "logged?"}]
    )
    logged = InferenceStore(str(server.home / "inference")).find_request(reply.id)
    assert logged["messages"] == [{"role": "user", "content": "logged?"}]
    assert logged["response"] == reply.choices[0].message.content
    assert logged["completion_tokens"] == reply.usage.completion_tokens
    assert logged["latency_ms"] > 0


# Every kind of PII the redactor knows (llmops/data/pii.py), in the formats data/sample/PLANTED.md
# plants them, with values of this test's own so that no other test's data can match a grep.
PII = {
    "EMAIL": ["mara.olsen@example.net"],
    "PHONE": ["+1 (212) 555-0147", "020 7946 0321", "212-555-0175"],
    "CREDIT_CARD": ["4012 8888 8888 1881", "5105-1051-0510-5100"],
    "IP_ADDRESS": ["192.0.2.77"],
    "IBAN": ["GB33 BUKB 2020 1555 5555 55", "NL91ABNA0417164300"],
}


def _pii_text(placeholders: bool) -> str:
    """All the PII values in one sentence, or that sentence as it must be stored."""
    return "; ".join(
        f"my {kind.lower()} {f'[{kind}]' if placeholders else value}"
        for kind, values in PII.items()
        for value in values
    )


def _files_holding(roots: list[Path], needles: list[str]) -> dict[str, list[str]]:
    """Every file under `roots` (databases and logs included, read as bytes) holding any of
    `needles`: file -> the needles found."""
    found = {}
    for path in (p for root in roots for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        hits = [needle for needle in needles if needle.encode() in data]
        if hits:
            found[str(path)] = hits
    return found


def test_pii_and_the_key_never_rest_in_clear(server: Server) -> None:
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    from llmops.serving.store import InferenceStore

    raw, redacted = _pii_text(placeholders=False), _pii_text(placeholders=True)
    messages = [
        {"role": "system", "content": f"Customer file: {raw}"},
        {"role": "user", "content": "Please update it."},
    ]
    client = server.client
    chat = client.chat.completions.create(model=MODEL, messages=messages)
    completion = client.completions.create(model=MODEL, prompt=f"Update {raw}")
    chat_stream = list(client.chat.completions.create(model=MODEL, messages=messages, stream=True))
    text_stream = list(client.completions.create(model=MODEL, prompt=raw, stream=True))
    ids = [chat.id, completion.id, chat_stream[0].id, text_stream[0].id]
    for request_id in ids:
        stored = client.post(
            "/feedback",
            body={"request_id": request_id, "rating": "down", "corrected_answer": f"Use {raw}"},
            cast_to=httpx.Response,
        ).json()
        assert stored["correction"] == f"Use {redacted}"

    # Placeholders where the values were, through every endpoint and the feedback store.
    log = InferenceStore(str(server.home / "inference"))
    requests = log.read_requests().set_index("request_id").loc[ids]
    assert [m[0]["content"] for m in requests["messages"]] == [
        f"Customer file: {redacted}",
        f"Update {redacted}",
        f"Customer file: {redacted}",
        redacted,
    ]
    corrections = log.read_feedback().set_index("request_id").loc[ids, "correction"]
    assert corrections.tolist() == [f"Use {redacted}"] * 4

    # Nothing in clear anywhere: the project home (inference log, feedback, MLflow, the server
    # log) and the Prefect database that holds the serve run, its parameters and artifacts.
    prefect_db = Path(PREFECT_SERVER_DATABASE_CONNECTION_URL.value().split(":///", 1)[1])
    roots = [server.home, prefect_db.parent]
    values = [value for values in PII.values() for value in values]
    assert (server.home / "server.log").stat().st_size > 0
    assert _files_holding(roots, [*values, KEY]) == {}
    assert _files_holding([server.home / "inference"], ["[CREDIT_CARD]", "[IBAN]"])


def _requests_counted(server: Server, endpoint: str, status: int) -> float:
    """llmops_requests_total for one endpoint and status, as /metrics reports it."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{server.base_url}/metrics").text
    family = next(f for f in text_string_to_metric_families(text) if f.name == "llmops_requests")
    labels = {"endpoint": endpoint, "status": str(status)}
    return sum(s.value for s in family.samples if s.name.endswith("_total") and s.labels == labels)


def test_metrics_count_rejected_keys(server: Server) -> None:
    before = _requests_counted(server, "chat", 401), _requests_counted(server, "models", 401)
    wrong = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="nope", max_retries=0)
    for _ in range(2):
        with pytest.raises(openai.AuthenticationError):
            wrong.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert httpx.get(f"{server.base_url}/v1/models").status_code == 401
    after = _requests_counted(server, "chat", 401), _requests_counted(server, "models", 401)
    assert (after[0] - before[0], after[1] - before[1]) == (2, 1)


def test_hot_swap_under_concurrent_requests_fails_nothing(server: Server) -> None:
    def ask(i: int) -> str:
        reply = server.client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"question {i}"}]
        )
        return reply.system_fingerprint

    before = server.client.models.list().data[0].version
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMOPS_HOME", str(server.home))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{server.home / 'mlflow.db'}")
        with ThreadPoolExecutor(8) as pool:
            early = [pool.submit(ask, i) for i in range(24)]
            new_version = register_talking_champion(MODEL, server.home, seed=1, scale=0.5)
            late = [pool.submit(ask, i) for i in range(24, 48)]
            served = [f.result() for f in early + late]  # any failed request raises here
    assert new_version != before
    deadline = time.monotonic() + 30
    while server.client.models.list().data[0].version != new_version:
        assert time.monotonic() < deadline, "alias move not picked up"
        time.sleep(0.2)
    assert ask(99) == f"v{new_version}"
    assert set(served) <= {f"v{before}", f"v{new_version}"}


def test_serve_profiles_validate_and_limits_are_checked() -> None:
    from pydantic import ValidationError

    from llmops.flow_configs import ServeConfig

    for profile in ("tiny", "cpu", "gpu"):
        config = ServeConfig.from_profile(profile)
        assert config.default_max_tokens <= config.max_tokens_limit
        assert config.raw_text_retention_days == 0  # raw text is kept only when opted in
    with pytest.raises(ValidationError, match="default_max_tokens"):
        ServeConfig(default_max_tokens=100, max_tokens_limit=10)
    with pytest.raises(ValidationError):
        ServeConfig(max_batch=0)


def test_api_key_comes_from_secret_block_or_environment(
    prefect_harness: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from prefect.blocks.system import Secret

    from flows.serve import load_api_key
    from llmops.governance.keys import FileKeyStore, create_key

    Secret(value="from-block").save("serve-test-key", overwrite=True)
    monkeypatch.setenv("SERVE_TEST_KEY", "from-env")
    from_block = load_api_key.fn(True, "SERVE_TEST_KEY", "serve-test-key", None)
    from_env = load_api_key.fn(True, "SERVE_TEST_KEY", None, None)
    assert from_block.get_secret_value() == "from-block"
    assert from_env.get_secret_value() == "from-env"
    assert "from-env" not in f"{from_env} {from_env!r}"  # masked wherever it is printed
    assert load_api_key.fn(False, "SERVE_TEST_KEY", None, None) is None
    monkeypatch.delenv("SERVE_TEST_KEY")
    with pytest.raises(ValueError, match=r"no API key: set \$SERVE_TEST_KEY, create keys"):
        load_api_key.fn(True, "SERVE_TEST_KEY", None, None)
    # Keys made with `llmops keys` are enough on their own: no single key needed then.
    keys = FileKeyStore(tmp_path / "keys.json")
    create_key(keys, "app", "inference")
    assert load_api_key.fn(True, "SERVE_TEST_KEY", None, keys) is None
