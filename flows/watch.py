"""Watch a landing folder or s3:// prefix and emit `llmops.dataset.landed` for each new file.

    llmops watch data/landing          # deploy it on a short interval to watch continuously

The retraining deployment's trigger (prefect.yaml) listens for that event.
"""

from typing import Any, ClassVar

from prefect import flow
from pydantic import Field

from llmops.config import FlowConfig
from llmops.home import project_home
from tasks.watch import emit_landed_events, list_landing_files, load_seen, save_seen


class WatchConfig(FlowConfig):
    """Where new data lands and where the watcher remembers what it has seen."""

    profile_dir: ClassVar[str] = "watch"

    landing: str = Field("data/landing", description="Folder or s3:// prefix to watch.")
    storage_options: dict[str, Any] = Field(
        default_factory=dict, description="fsspec options (endpoint); credentials from env."
    )
    state_file: str = Field(
        default_factory=lambda: str(project_home() / "watch" / "seen.json"),
        description="JSON file of announced files (path -> ETag or content hash).",
    )


@flow(name="watch", log_prints=True)
def watch(config: WatchConfig) -> list[str]:
    """Announce files that are new or changed since the last run; return their paths."""
    current = list_landing_files(config.landing, config.storage_options)
    seen = load_seen(config.state_file)
    new_files = {path: tag for path, tag in current.items() if seen.get(path) != tag}
    emit_landed_events(new_files, config.landing)
    save_seen(config.state_file, {**seen, **current})
    print(f"{len(new_files)} new file(s) in {config.landing}")
    return sorted(new_files)
