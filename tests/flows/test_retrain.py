"""The retrain flow on real Prefect and MLflow (tiny model): landed data joins the sources,
and the run is named after why it started."""

import json
from pathlib import Path

from flows.retrain import retrain
from llmops.flow_configs import RetrainConfig


def test_retrain_adds_landed_data_and_names_the_run(
    tmp_path: Path, llmops_home: Path, prefect_harness: None
):
    landed = tmp_path / "batch1.jsonl"
    landed.write_text(
        json.dumps({"id": "landed-1", "prompt": "Can I print a notebook?", "response": "Yes."})
        + "\n"
    )
    state = retrain(
        RetrainConfig(profile="tiny", reason="llmops.dataset.landed", new_data=[str(landed)]),
        return_state=True,
    )
    result = state.result()
    manifest = json.loads((Path(result.dataset.uri) / "manifest.json").read_text())
    assert result.dataset.uri == str(llmops_home / "datasets" / result.dataset.dataset_id)
    assert str(landed) in manifest["sources"]
    assert manifest["counts"]["total"] == 368  # the bundled sample + the landed record

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.name == "retrain: llmops.dataset.landed"
