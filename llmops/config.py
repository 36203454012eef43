"""Typed flow configuration and YAML profiles.

Each flow has one pydantic config (subclass of `FlowConfig`); the Prefect UI renders it as a
form. Profiles live in `profiles/<flow>/<profile>.yaml` (`tiny` for tests, `cpu` for the demo,
`gpu` for real runs) and are validated by the same model.
"""

import hashlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field

from llmops import store

PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"
PROFILE_NAMES = ("tiny", "cpu", "gpu")


class FlowConfig(BaseModel):
    """Base of every flow config: unknown keys are errors, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # Set by each subclass: the folder under profiles/ holding its YAML profiles.
    profile_dir: ClassVar[str] = ""

    store: str | None = Field(
        None,
        description="Object store URL for datasets, checkpoints, reports and logs, e.g. "
        "s3://bucket/llmops (None = $LLMOPS_STORE, else the project home).",
    )

    def store_url(self) -> str:
        """The store this run reads and writes: `store`, else $LLMOPS_STORE, else the home."""
        return store.store_root(self.store)

    @classmethod
    def from_profile(cls, profile: str = "cpu", **overrides: Any) -> Self:
        """Load `profiles/<profile_dir>/<profile>.yaml`, apply overrides, validate."""
        data = load_profile_data(cls.profile_dir, profile)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(data)

    def fingerprint(self, exclude: set[str] | None = None) -> str:
        """A stable short hash of the config's values but `exclude` (used in cache keys, tags)."""
        canonical = json.dumps(self.model_dump(mode="json", exclude=exclude), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def repo_path(path: str) -> str:
    """A relative path that does not exist from here, read against the repository root (so the
    bundled sample and contracts work from any working directory)."""
    candidate = PROFILES_DIR.parent / path
    if "://" in path or Path(path).is_absolute() or Path(path).exists() or not candidate.exists():
        return path
    return str(candidate)


def profile_path(profile_dir: str, profile: str) -> Path:
    """Where the YAML for a flow's profile lives."""
    return PROFILES_DIR / profile_dir / f"{profile}.yaml"


def load_profile_data(profile_dir: str, profile: str) -> dict[str, Any]:
    """Read a profile YAML as a dict; a missing profile is a clear error listing what exists."""
    path = profile_path(profile_dir, profile)
    if not path.exists():
        known = sorted(p.stem for p in (PROFILES_DIR / profile_dir).glob("*.yaml"))
        raise FileNotFoundError(f"no profile {profile!r} for {profile_dir!r}; known: {known}")
    return yaml.safe_load(path.read_text()) or {}


def flow_config_class(module: ModuleType) -> type[FlowConfig]:
    """A flow module's config: the one FlowConfig subclass whose profile_dir is the module's name
    (flows/<name>.py reads profiles/<name>/)."""
    name = module.__name__.rsplit(".", 1)[-1]
    found = [
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, FlowConfig) and value.profile_dir == name
    ]
    if len(found) != 1:
        raise LookupError(f"{module.__name__} must define exactly one FlowConfig for {name!r}")
    return found[0]
