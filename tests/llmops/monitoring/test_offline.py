"""Monitoring needs no network: embed + Evidently report in a process with no network at all.

`unshare -n` gives the child an empty network namespace (no interfaces but a down loopback), so
any download attempt (NLTK data, hub models) fails instead of quietly succeeding here.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
from monitoring_support import shifted_window, support_window
from llmops.monitoring.drift import DriftThresholds, build_drift_report, decide_drift
from llmops.monitoring.drift import report_scores, with_embeddings
from llmops.monitoring.embeddings import embed_texts

def embedded(frame):
    return with_embeddings(frame, embed_texts(frame["prompt"].tolist()))

thresholds = DriftThresholds(0.55, 0.05, 0.5)
reference, current = embedded(support_window(60, 1)), embedded(shifted_window(60, 2))
snapshot = build_drift_report(reference, current, thresholds)
snapshot.get_html_str(as_iframe=False)
print("DRIFT", decide_drift(report_scores(snapshot), thresholds).drift_detected)
"""


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="needs `unshare -n` (root or user namespaces)")
def test_drift_report_runs_with_the_network_absent() -> None:
    env = dict(os.environ)
    # Not relying on offline flags: with them unset, a download attempt would be made and fail.
    for flag in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        env.pop(flag, None)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[2]), os.getcwd()])
    done = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "DRIFT True" in done.stdout
    assert "nltk" not in done.stderr.lower()
