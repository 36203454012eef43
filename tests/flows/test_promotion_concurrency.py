"""Two promotions and a rollback at once, from three separate processes, 20 rounds, through
the real flows on one Prefect server and one MLflow store (SQLite, as on a laptop).

Each round, two new candidates were both evaluated against the current champion and both pass
the gate; the three processes start together. Whatever the order, every round must end with a
champion that passed a gate against the version it replaced, no candidate may replace another
champion than the one it was compared with, and the previous-champion chain loses no version:
the versions reached by walking `replaced_version` from the champion are exactly those ever
promoted and not rolled back.

The candidates' evaluation reports are copies of one real evaluation (tiny model) with their own
adapter and the champion of the round: what is under test is the alias moves, not the metrics.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from model_support import make_tiny_adapter, train_tiny_adapter, write_tiny_dataset

from flows.evaluate import evaluate
from flows.promote import promote
from llmops import store
from llmops.flow_configs import EvaluateConfig, PromoteConfig
from llmops.model import registry
from llmops.model.adapters import adapter_sha256
from llmops.outputs import EvaluationReport
from tasks.evaluation import report_uri

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 20
ROLES = ("promote-a", "promote-b", "rollback")

pytestmark = pytest.mark.timeout(1500)


def candidate_report(
    real: EvaluationReport, adapter: Path, champion: str | None, run_id: str
) -> EvaluationReport:
    """The real evaluation's evidence, for another adapter, against `champion`."""
    against = "champion" if champion else "base"
    report = real.model_copy(
        update={
            "run_id": run_id,
            "adapter_uri": str(adapter),
            "adapter_sha256": adapter_sha256(adapter),
            "champion_version": champion,
            "intervals": {against: real.intervals["base"]},
        }
    )
    store.write_json(report_uri(store.store_root(), run_id), report.model_dump(mode="json"))
    return report


def test_two_promotions_and_a_rollback_at_once_twenty_times(
    tmp_path: Path, llmops_home: Path, prefect_harness: None
) -> None:
    from prefect.settings import PREFECT_API_URL

    name = PromoteConfig.from_profile("tiny").registered_model
    dataset = write_tiny_dataset(tmp_path / "datasets")
    trained = train_tiny_adapter(tmp_path / "trained", dataset, steps=20)
    real = evaluate(EvaluateConfig.from_profile("tiny", dataset=str(dataset), adapter=str(trained)))

    def new_candidate(tag: str, seed: int, champion: str | None) -> str:
        adapter, _ = make_tiny_adapter(tmp_path / "adapters" / tag, seed=seed, scale=0.01)
        return candidate_report(real, adapter, champion, f"eval-{tag}").run_id

    for seed in (1, 2):  # two champions in a row, so the first rollback has somewhere to go
        champion = registry.alias_version(name, registry.CHAMPION)
        evaluation = new_candidate(f"seed-{seed}", seed, champion)
        promote(PromoteConfig.from_profile("tiny", evaluation_run_id=evaluation))

    workdir = tmp_path / "rounds"
    workdir.mkdir()
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    script = str(ROOT / "tests" / "promotion_support.py")
    workers = [
        subprocess.Popen(
            [sys.executable, "-P", script, role, str(workdir), str(ROUNDS)],
            env=env,
            cwd=tmp_path,
            stdout=(tmp_path / f"{role}.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        for role in ROLES
    ]
    try:
        for number in range(ROUNDS):
            before = registry.alias_version(name, registry.CHAMPION)
            reports = {
                role: new_candidate(f"{number}-{role}", 1000 + 10 * number + i, before)
                for i, role in enumerate(ROLES[:2])
            }
            (workdir / f"round-{number}.json").write_text(json.dumps(reports))
            outcomes = wait_for_round(workdir, number, workers, tmp_path)

            champion = registry.alias_version(name, registry.CHAMPION)
            # A candidate only ever replaced the champion it was evaluated against (both may
            # pass in one round when the rollback puts that champion back in between).
            for version in registry_versions(name):
                tags = version.tags
                if tags["evaluation_run_id"] in reports.values() and (
                    tags["gate_decision"] == "promoted"
                ):
                    assert tags.get("replaced_version") == before, outcomes
            # The champion passed a gate against exactly the version it replaced.
            tags = registry.version_tags(name, champion)
            report = EvaluationReport.model_validate(
                store.read_json(report_uri(store.store_root(), tags["evaluation_run_id"]))
            )
            assert tags["gate_decision"] == "promoted", outcomes
            assert report.champion_version == tags.get("replaced_version"), outcomes
            # No version lost: the chain is every version promoted and never rolled back.
            standing = {
                str(v.version)
                for v in registry_versions(name)
                if v.tags.get("gate_decision") == "promoted" and v.tags.get("rolled_back") != "true"
            }
            history = registry.champion_chain(name)
            assert history[0] == champion and set(history) == standing, outcomes
            previous = registry.alias_version(name, registry.PREVIOUS_CHAMPION)
            assert previous == tags.get("replaced_version"), outcomes
            print(f"round {number}: v{before} -> v{champion}: {outcomes}")
    finally:
        for worker in workers:
            worker.kill()


def registry_versions(name: str) -> list:
    from llmops.tracking import mlflow_client

    return mlflow_client().search_model_versions(f"name='{name}'")


def wait_for_round(
    workdir: Path, number: int, workers: list[subprocess.Popen], logs: Path
) -> dict[str, str]:
    """Every role's outcome of round `number`; fails with the worker logs if one died."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        done = {role: workdir / f"round-{number}.{role}.txt" for role in ROLES}
        if all(path.exists() for path in done.values()):
            return {role: path.read_text() for role, path in done.items()}
        for role, worker in zip(ROLES, workers, strict=True):
            if worker.poll() is not None and not done[role].exists():
                raise AssertionError(f"{role} exited: {(logs / f'{role}.log').read_text()[-3000:]}")
        time.sleep(0.1)
    raise AssertionError(f"round {number} did not finish in 300 s")
