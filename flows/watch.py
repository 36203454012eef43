"""Watch a landing folder or s3:// prefix and emit `llmops.dataset.landed` for each new file.

    llmops watch data/landing          # deploy it on a short interval to watch continuously

The retraining deployment's trigger (prefect.yaml) listens for that event.
"""

from prefect import flow

from llmops.flow_configs import WatchConfig
from tasks.watch import emit_landed_events, list_landing_files, load_seen, save_seen


@flow(name="watch", log_prints=True)
def watch(config: WatchConfig) -> list[str]:
    """Announce files that are new or changed since the last run; return their paths."""
    current = list_landing_files(config.landing, config.storage_options)
    seen = load_seen(config.state_file_url())
    new_files = {path: tag for path, tag in current.items() if seen.get(path) != tag}
    emit_landed_events(new_files, config.landing)
    save_seen(config.state_file_url(), {**seen, **current})
    print(f"{len(new_files)} new file(s) in {config.landing}")
    return sorted(new_files)
