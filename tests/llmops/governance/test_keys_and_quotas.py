"""Keys are stored hashed and refused once revoked or expired; quotas admit exactly their
limits, also when many requests arrive at once."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmops.cli import app
from llmops.governance.keys import FileKeyStore, create_key, revoke_key
from llmops.governance.quotas import QuotaExceededError, Quotas
from llmops.serving.access import AccessDeniedError, KeyRing


def test_keys_rest_hashed_and_roles_decide_endpoints(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "keys.json")
    _, inference = create_key(store, "app", "inference")
    _, feedback = create_key(store, "labeler", "feedback")
    _, admin = create_key(store, "ops", "admin")
    stored = store.path.read_text()
    assert all(key not in stored for key in (inference, feedback, admin))
    ring = KeyRing(store, None, "LLMOPS_API_KEY")
    ring.reload()
    assert ring.identify(f"Bearer {inference}", "chat").name == "app"
    assert ring.identify(f"Bearer {admin}", "admin_reload").role == "admin"
    assert ring.identify(f"Bearer {feedback}", "feedback").name == "labeler"
    for key, endpoint in ((inference, "feedback"), (feedback, "chat"), (inference, "admin_keys")):
        with pytest.raises(AccessDeniedError) as denied:
            ring.identify(f"Bearer {key}", endpoint)
        assert denied.value.status == 403
    with pytest.raises(AccessDeniedError, match="wrong API key"):
        ring.identify("Bearer llmops-guess", "chat")


def test_revoked_and_expired_keys_are_refused(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "keys.json")
    _, key = create_key(store, "app", "inference")
    ring = KeyRing(store, None, "LLMOPS_API_KEY")
    ring.reload()
    revoke_key(store, "app")
    assert ring.identify(f"Bearer {key}", "chat").name == "app"  # until the next refresh
    ring.reload()
    with pytest.raises(AccessDeniedError, match="revoked"):
        ring.identify(f"Bearer {key}", "chat")
    record, _ = create_key(store, "short", "inference", expires_days=1)
    assert record.refusal(datetime.now(UTC) + timedelta(days=1, seconds=1)) is not None
    with pytest.raises(ValueError, match="already revoked"):
        revoke_key(store, "app")


def test_the_single_environment_key_is_an_admin(tmp_path: Path) -> None:
    from pydantic import SecretStr

    ring = KeyRing(None, SecretStr("laptop-key"), "LLMOPS_API_KEY")
    assert ring.identify("Bearer laptop-key", "admin_keys").role == "admin"
    with pytest.raises(AccessDeniedError):
        ring.identify("Bearer other", "chat")


def test_requests_per_minute_admit_exactly_the_limit_then_retry_after() -> None:
    now = [1000.0]
    quotas = Quotas(clock=lambda: now[0])
    admitted = 0
    for _ in range(30):
        try:
            quotas.admit("app", 20, None, 10)
            admitted += 1
        except QuotaExceededError as error:
            assert 1 <= error.retry_after_s <= 60
    assert admitted == 20
    now[0] += 61
    quotas.admit("app", 20, None, 10)


def test_tokens_per_day_reserve_then_settle() -> None:
    quotas = Quotas()
    reserved = [quotas.admit("app", None, 100, 40) for _ in range(2)]
    with pytest.raises(QuotaExceededError, match="20 of its 100 tokens"):
        quotas.admit("app", None, 100, 40)  # 80 reserved: a third could overrun
    for tokens in reserved:
        quotas.settle("app", tokens, 15)  # each used far less than its bound
    quotas.admit("app", None, 100, 40)


def test_keys_cli_create_list_revoke(llmops_home: Path) -> None:
    runner = CliRunner()
    created = runner.invoke(app, ["keys", "create", "--name", "ci", "--role", "feedback"])
    assert created.exit_code == 0, created.output
    key = created.output.split()[0]
    assert key.startswith("llmops-") and key not in (llmops_home / "keys.json").read_text()
    listed = runner.invoke(app, ["keys", "list"]).output
    assert "ci" in listed and "feedback" in listed and key not in listed
    assert runner.invoke(app, ["keys", "revoke", "ci"]).exit_code == 0
    again = runner.invoke(app, ["keys", "revoke", "ci"])
    assert again.exit_code == 1 and "already revoked" in again.output
    bad = runner.invoke(app, ["keys", "create", "--name", "x", "--role", "root"])
    assert bad.exit_code == 2 and "inference, feedback or admin" in bad.output
