"""Who is calling `llmops serve`: the bearer key looked up among the hashed keys (re-read every
refresh, so a revoked key stops working without a restart), or the single `$LLMOPS_API_KEY` of
the laptop case, which is an admin key."""

import hmac
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import SecretStr

from llmops.governance.keys import KeyRecord, KeyStore, hash_key, role_may_call

log = logging.getLogger("llmops.serving")


@dataclass(frozen=True)
class Caller:
    """The key behind a request: its name (never the key), role and limits."""

    name: str
    role: str
    requests_per_minute: int | None = None
    tokens_per_day: int | None = None

    def may_call(self, endpoint: str) -> bool:
        return role_may_call(self.role, endpoint)


ANONYMOUS = Caller("anonymous", "admin")  # keys switched off (--no-api-key)


class AccessDeniedError(Exception):
    """No valid key: `status` is 401 (who are you?) or 403 (not with this key)."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


class KeyRing:
    """The keys this server accepts."""

    def __init__(self, store: KeyStore | None, env_key: SecretStr | None, env_name: str) -> None:
        self.store = store
        self.env_key = env_key
        self.env_name = env_name
        self.by_hash: dict[str, KeyRecord] = {}

    @property
    def enabled(self) -> bool:
        return self.env_key is not None or self.store is not None

    def reload(self) -> None:
        """Re-read the key store (called every keys_refresh_seconds); a failed read keeps the
        keys already known, so a flaky store does not lock everyone out."""
        if self.store is None:
            return
        try:
            self.by_hash = {k.sha256: k for k in self.store.load().values()}
        except Exception:
            log.exception("could not re-read the API keys; keeping the %d known", len(self.by_hash))

    def identify(self, authorization: str, endpoint: str) -> Caller:
        """The caller of `endpoint` with this Authorization header, or AccessDeniedError."""
        if not self.enabled:
            return ANONYMOUS
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise AccessDeniedError("missing API key (Authorization: Bearer <key>)")
        caller = self._caller(given)
        if not caller.may_call(endpoint):
            raise AccessDeniedError(
                f"key {caller.name!r} has role {caller.role!r}, which may not call {endpoint}", 403
            )
        return caller

    def _caller(self, given: str) -> Caller:
        # compare_digest: the time taken must not reveal how much of the key matched.
        if self.env_key is not None and hmac.compare_digest(
            given.encode(), self.env_key.get_secret_value().encode()
        ):
            return Caller(self.env_name, "admin")
        # A lookup by SHA-256: timing reveals nothing an attacker can steer toward a key.
        record = self.by_hash.get(hash_key(given))
        if record is None:
            raise AccessDeniedError("wrong API key")
        refusal = record.refusal(datetime.now(UTC))
        if refusal:
            raise AccessDeniedError(refusal)
        return Caller(record.name, record.role, record.requests_per_minute, record.tokens_per_day)
