"""The state of a gradual release of the challenger, kept in the MLflow registry so that every
serving host and the release flow read the same one.

One JSON tag on the registered model (`llmops.release`), written whole, so a reader never sees a
half-changed release. `llmops serve` reads it at each alias check: while a release is running it
serves the challenger too (a share of live traffic in canary mode, or copies of every request in
shadow mode); the release flow ends it with a decision.
"""

from datetime import UTC, datetime
from typing import Literal

from mlflow.exceptions import MlflowException
from pydantic import BaseModel, ConfigDict, Field

from llmops.tracking import mlflow_client

RELEASE_TAG = "llmops.release"
Mode = Literal["canary", "shadow"]
State = Literal["running", "promoted", "rejected", "stopped", "rolled_back"]


class Release(BaseModel):
    """A release of `version` against `champion_version` of `model`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    version: str = Field(description="The challenger's registry version.")
    champion_version: str = Field(description="The champion it is compared with.")
    mode: Mode
    share: float = Field(ge=0.0, le=1.0, description="Canary: the share of users it answers.")
    state: State = "running"
    started_at: datetime
    ended_at: datetime | None = None
    reason: str = ""

    @property
    def running(self) -> bool:
        return self.state == "running"


class ReleasePlan(BaseModel):
    """How a candidate that passed the offline gate goes live: a release, not at once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode
    share: float = Field(ge=0.0, le=1.0)


def read_release(model: str) -> Release | None:
    """The model's latest release (running or ended), or None when it never had one."""
    try:
        tags = mlflow_client().get_registered_model(model).tags
    except MlflowException:
        return None
    raw = tags.get(RELEASE_TAG)
    return Release.model_validate_json(raw) if raw else None


def write_release(release: Release) -> Release:
    mlflow_client().set_registered_model_tag(release.model, RELEASE_TAG, release.model_dump_json())
    return release


def new_release(
    model: str, version: str, champion_version: str, mode: Mode, share: float
) -> Release:
    return Release(
        model=model,
        version=version,
        champion_version=champion_version,
        mode=mode,
        share=share,
        started_at=datetime.now(UTC),
    )


def ended(release: Release, state: State, reason: str) -> Release:
    """The release with its ending recorded."""
    return release.model_copy(
        update={"state": state, "reason": reason, "ended_at": datetime.now(UTC)}
    )


def open_release(
    model: str,
    version: str,
    champion_version: str | None,
    mode: Mode,
    share: float,
    supersede: bool = False,
) -> Release:
    """Write a running release of `version` against `champion_version` and return it. Call it
    under the model's registry lock: it reads the current release and writes a new one.

    A release already running is an error, unless `supersede`, which ends it as stopped."""
    if champion_version is None:
        raise LookupError(f"{model} has no champion to compare a release with")
    if version == champion_version:
        raise ValueError(f"v{version} is already the champion of {model}: nothing to release")
    current = read_release(model)
    if current is not None and current.running:
        if not supersede:
            raise ValueError(
                f"a {current.mode} release of v{current.version} is already running on {model} "
                "(`llmops release stop` ends it)"
            )
        write_release(ended(current, "stopped", f"superseded by a release of v{version}"))
    return write_release(new_release(model, version, champion_version, mode, share))
