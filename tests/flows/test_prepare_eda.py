"""The EDA report `prepare` writes beside a dataset, on planted data: 3 exact copies in one
file, 2 PII records and a near-duplicate cluster of 3 in another, topics and languages as
metadata (real Great Expectations, Evidently and Prefect: the session harness)."""

import json
import re
from pathlib import Path

import yaml
from prefect.artifacts import Artifact
from typer.testing import CliRunner

from flows.prepare import prepare
from llmops.cli import app
from llmops.datasets import read_dataset
from llmops.flow_configs import PrepareConfig
from tests.flows.test_prepare import filler

CONTRACT = Path(__file__).resolve().parents[2] / "data_contracts" / "support_conversations.yaml"
FIGURES = ("clusters.png", "languages.png", "lengths.png", "slices.png", "sources.png", "turns.png")
EXPORT = (
    "To export a notebook open its menu, choose Export, pick Markdown or PDF and press Save; "
    "the file lands in your Downloads folder with every attachment zipped beside it"
)


def records(prefix: str, count: int, **metadata: str) -> list[dict]:
    """`count` distinct valid records (no two are near duplicates) with the given metadata."""
    return [{**r, "id": f"{prefix}-{i}", **metadata} for i, r in enumerate(filler(count))]


def planted(folder: Path) -> list[str]:
    """tickets.jsonl: 20 records (12 billing, 8 sync; en) and 3 exact copies of the first;
    partner.jsonl: 10 export records (de), 2 with PII, a near-duplicate cluster of 3 (the last
    word changed, a word added) and 1 without a response."""
    tickets = records("billing", 12, topic="billing", language="en")
    tickets += records("sync", 8, topic="sync", language="en")
    tickets += [{**tickets[0], "id": f"copy-{i}"} for i in range(3)]
    partner = records("export", 10, topic="export", language="de")
    partner[0]["prompt"] += " Mail me at jane.doe@example.com"
    partner[1]["prompt"] += " Call me on +44 20 7946 0958"
    question = {"prompt": "How do I export a notebook with its attachments?", "topic": "export"}
    partner += [
        {"id": "near-0", **question, "response": EXPORT},
        {"id": "near-1", **question, "response": EXPORT.removesuffix(" it") + " them"},
        {"id": "near-2", **question, "response": EXPORT + " too"},
        {"id": "no-response", "prompt": "Hello?", "topic": "export"},
    ]
    paths = []
    for name, rows in (("tickets.jsonl", tickets), ("partner.jsonl", partner)):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
        paths.append(str(folder / name))
    return paths


def table_rows(html: str) -> list[list[str]]:
    """Every table row of a page as its cell texts."""
    rows = re.findall(r"<tr>(.*?)</tr>", html, re.S)
    return [re.findall(r"<t[dh]>(.*?)</t[dh]>", row, re.S) for row in rows]


def test_prepare_writes_an_eda_report_with_the_planted_counts(
    tmp_path: Path, prefect_harness: None
):
    contract = tmp_path / "contract.yaml"
    contract.write_text(
        yaml.safe_dump({**yaml.safe_load(CONTRACT.read_text()), "slices": ["topic"]})
    )
    sources = planted(tmp_path)
    output = str(tmp_path / "datasets")
    options = ["--contract", str(contract), "--output", output, "--profile", "tiny"]
    result = CliRunner().invoke(app, ["prepare", *sources, *options])
    assert result.exit_code == 0, result.output
    dataset = read_dataset(re.search(r"^dataset \S+ -> (\S+)$", result.output, re.M)[1])

    report = Path(dataset.uri) / "eda"
    assert dataset.eda_report == str(report / "index.html")
    assert f"exploration (EDA report): {dataset.eda_report}" in result.output
    manifest = json.loads((Path(dataset.uri) / "manifest.json").read_text())
    assert manifest["eda_report"] == "eda/index.html"
    assert sorted(p.name for p in report.iterdir()) == sorted(
        [*FIGURES, "index.html", "summary.html"]
    )
    for name in FIGURES:
        data = (report / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5_000, name

    rows = table_rows((report / "index.html").read_text())
    header = [
        "source_file",
        "records",
        "accepted",
        "with_pii",
        "quarantined",
        "exact_duplicate",
        "near_duplicate",
        "conflicting_answer",
        "contaminated",
    ]
    assert rows[rows.index(header) + 1 : rows.index(header) + 3] == [
        ["partner.jsonl", "14", "11", "2", "1", "0", "2", "0", "0"],
        ["tickets.jsonl", "23", "20", "0", "0", "3", "0", "0", "0"],
    ]
    assert ["near-0", "3", "near-1, near-2"] in rows  # kept record, cluster size, dropped ones
    assert ["en", "20"] in rows and ["de", "10"] in rows  # near-0 and no-response: no language
    assert ["Latin", "1"] in rows  # the one accepted record without one: its script
    assert rows[rows.index(["topic", "records"]) + 1 :][:3] == [
        ["billing", "12"],
        ["export", "11"],
        ["sync", "8"],
    ]
    summary = (report / "summary.html").read_text()  # Evidently's column summaries
    for column in ("prompt_words", "response_words", "turns", "source_file", "slice.topic"):
        assert f'"{column}"' in summary
    manifest_artifact = str(Artifact.get("dataset-manifest").data)
    assert f"({(report / 'index.html').as_uri()})" in manifest_artifact

    # eda: false writes no report and leaves the dataset id alone (it does not shape the data).
    config = PrepareConfig.from_profile(
        "tiny", sources=sources, contract=str(contract), output=str(tmp_path / "plain"), eda=False
    )
    plain = prepare(config)
    assert (plain.dataset_id, plain.eda_report) == (dataset.dataset_id, None)
    assert not (Path(plain.uri) / "eda").exists()
