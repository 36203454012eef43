"""API keys with roles, kept hashed: created, listed and revoked by `llmops keys`, checked by
`llmops serve`.

A key is shown once, when it is created; the store keeps its SHA-256. Keys are 256 random bits,
so a fast hash is enough: a slow password hash (scrypt, argon2) protects guessable secrets, and
here would only add its cost to every request.

The store is a JSON file in the project home (`<home>/keys.json`), or a Prefect Secret block
when a team's serving hosts share keys through the Prefect server.
"""

import hashlib
import json
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, Protocol

from filelock import FileLock
from pydantic import BaseModel, ConfigDict, Field

from llmops.home import home_path

Role = Literal["inference", "feedback", "admin"]
# Which endpoints (route names) each role may call; admin may call every one.
ROLE_ENDPOINTS: dict[str, frozenset[str]] = {
    "inference": frozenset({"chat", "completions", "models"}),
    "feedback": frozenset({"feedback"}),
}
KEY_PREFIX = "llmops-"


class KeyRecord(BaseModel):
    """One key as stored: its name, role, limits and hash, never the key itself."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    role: Role
    sha256: str
    hint: str = Field(description="The key's first characters, to tell keys apart in listings.")
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_day: int | None = Field(None, ge=1)

    def refusal(self, now: datetime) -> str | None:
        """Why this key is refused now (revoked, expired), or None."""
        if self.revoked_at is not None:
            return f"key {self.name!r} was revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return f"key {self.name!r} expired at {self.expires_at:%Y-%m-%d %H:%M} UTC"
        return None


def role_may_call(role: str, endpoint: str) -> bool:
    """Whether a key of `role` may call the endpoint (route name) `endpoint`."""
    return role == "admin" or endpoint in ROLE_ENDPOINTS[role]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore(Protocol):
    """Where the hashed keys live."""

    def load(self) -> dict[str, KeyRecord]: ...

    def update(self, change: "KeyChange") -> KeyRecord: ...


class KeyChange(Protocol):
    def __call__(self, keys: dict[str, KeyRecord]) -> KeyRecord: ...


class FileKeyStore:
    """Keys in a JSON file; every change holds a lock file beside it, so two `llmops keys`
    commands never lose each other's change."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, KeyRecord]:
        if not self.path.exists():
            return {}
        rows = json.loads(self.path.read_text())
        return {row["name"]: KeyRecord.model_validate(row) for row in rows}

    def update(self, change: KeyChange) -> KeyRecord:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{self.path}.lock"):
            keys = self.load()
            changed = change(keys)
            keys[changed.name] = changed
            rows = [k.model_dump(mode="json") for k in keys.values()]
            staged = self.path.with_suffix(".tmp")
            staged.write_text(json.dumps(rows, indent=1))
            os.chmod(staged, 0o600)
            staged.replace(self.path)  # readers see the old file or the new one, never half
        return changed


class SecretBlockKeyStore:
    """Keys in a Prefect Secret block (JSON), shared by every host of a team stack.

    Changes are read-modify-write without a lock: key changes are rare admin actions, and each
    is audited, so a lost one shows.
    """

    def __init__(self, block_name: str) -> None:
        self.block_name = block_name

    def load(self) -> dict[str, KeyRecord]:
        from prefect.blocks.system import Secret

        try:
            rows = Secret.load(self.block_name).get()
        except ValueError:  # no such block yet: no keys
            return {}
        return {row["name"]: KeyRecord.model_validate(row) for row in rows}

    def update(self, change: KeyChange) -> KeyRecord:
        from prefect.blocks.system import Secret

        keys = self.load()
        changed = change(keys)
        keys[changed.name] = changed
        Secret(value=[k.model_dump(mode="json") for k in keys.values()]).save(
            self.block_name, overwrite=True
        )
        return changed


def key_store(secret_block: str | None = None, path: str | None = None) -> KeyStore:
    """The Secret block when named, else the file (default <home>/keys.json)."""
    if secret_block:
        return SecretBlockKeyStore(secret_block)
    return FileKeyStore(Path(path) if path else home_path("keys.json"))


def create_key(
    store: KeyStore,
    name: str,
    role: Role,
    expires_days: float | None = None,
    requests_per_minute: int | None = None,
    tokens_per_day: int | None = None,
) -> tuple[KeyRecord, str]:
    """A new key: its record (stored) and the key itself (shown once, never stored)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC)

    def add(keys: dict[str, KeyRecord]) -> KeyRecord:
        if name in keys and keys[name].revoked_at is None:
            raise ValueError(f"a key named {name!r} exists; revoke it first or pick another name")
        return KeyRecord(
            name=name,
            role=role,
            sha256=hash_key(key),
            hint=key[: len(KEY_PREFIX) + 4],
            created_at=now,
            expires_at=now + timedelta(days=expires_days) if expires_days else None,
            requests_per_minute=requests_per_minute,
            tokens_per_day=tokens_per_day,
        )

    return store.update(add), key


def revoke_key(store: KeyStore, name: str) -> KeyRecord:
    """Mark the key revoked (kept, so the audit trail's names still resolve)."""

    def revoke(keys: dict[str, KeyRecord]) -> KeyRecord:
        if name not in keys:
            known = ", ".join(sorted(keys)) or "none"
            raise ValueError(f"no key named {name!r} (keys: {known})")
        if keys[name].revoked_at is not None:
            raise ValueError(f"key {name!r} is already revoked")
        return keys[name].model_copy(update={"revoked_at": datetime.now(UTC)})

    return store.update(revoke)
