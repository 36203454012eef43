"""One of the three processes of the concurrent-promotion test: each round, it waits for the
round's go file, then runs its flow (promote candidate A, promote candidate B, or roll back)
against the test's Prefect server and MLflow store, and writes what happened.

    python -P tests/promotion_support.py promote-a|promote-b|rollback WORKDIR ROUNDS
"""

import json
import sys
import time
from pathlib import Path


def run_rounds(role: str, workdir: Path, rounds: int) -> None:
    from flows.promote import promote
    from flows.rollback import rollback
    from llmops.flow_configs import PromoteConfig, RollbackConfig

    for number in range(rounds):
        go = workdir / f"round-{number}.json"
        while not go.exists():
            time.sleep(0.05)
        reports = json.loads(go.read_text())
        try:
            if role == "rollback":
                result = rollback(RollbackConfig.from_profile("tiny"))
                outcome = f"rolled back v{result['rolled_back']} to v{result['champion']}"
            else:
                config = PromoteConfig.from_profile("tiny", evaluation_run_id=reports[role])
                decision = promote(config)
                outcome = f"v{decision.version} {decision.verdict}: {'; '.join(decision.reasons)}"
        except LookupError as error:  # nothing to roll back: a legal outcome of a race
            outcome = f"no change: {error}"
        (workdir / f"round-{number}.{role}.txt").write_text(outcome)


if __name__ == "__main__":
    run_rounds(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]))
