"""Data contracts as files: the bundled one loads, and a wrong deduplication section fails at
load time with one line naming what is wrong."""

from pathlib import Path

import pytest

from llmops.data.contracts import Deduplication, failing_rows, load_contract
from llmops.data.ingest import FLAT_COLUMNS, flatten

CONTRACTS = Path(__file__).resolve().parents[3] / "data_contracts"


def write_contract(tmp_path: Path, deduplication: str) -> str:
    path = tmp_path / "contract.yaml"
    path.write_text(
        "name: test\nexpectations:\n"
        "  - {type: expect_column_values_to_not_be_null, kwargs: {column: prompt}}\n"
        f"deduplication:\n{deduplication}"
    )
    return str(path)


@pytest.mark.parametrize("path", sorted(CONTRACTS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_contract_loads(path: Path):
    assert load_contract(str(path)).deduplication.key in ("example", "prompt")


def test_the_bundled_contract_keys_on_the_whole_example():
    contract = load_contract(str(CONTRACTS / "support_conversations.yaml"))
    assert contract.deduplication == Deduplication("example", "prompt", "keep")


def test_a_contract_can_choose_the_prompt_and_drop_conflicting_answers(tmp_path: Path):
    path = write_contract(tmp_path, "  key: prompt\n  conflicting_answers: drop\n")
    assert load_contract(path).deduplication == Deduplication("prompt", "prompt", "drop")


@pytest.mark.parametrize(
    ("section", "error"),
    [
        ("  keys: prompt\n", r"unknown deduplication keys \['keys'\]"),
        ("  key: answer\n", "deduplication.key is 'answer', expected one of"),
        ("  conflicting_answers: merge\n", "expected one of \\['keep', 'drop'\\]"),
        ("  key: prompt\n", "key prompt keeps one answer per prompt; set conflicting_answers"),
    ],
)
def test_a_wrong_deduplication_section_is_one_clear_error(tmp_path: Path, section: str, error: str):
    with pytest.raises(ValueError, match=error) as raised:
        load_contract(write_contract(tmp_path, section))
    assert "\n" not in str(raised.value)


def test_gx_sees_the_named_columns_or_for_a_table_expectation_the_whole_frame(tmp_path: Path):
    # Column expectations get `row` and their columns only (the lists and dicts cost GX time);
    # a table-level expectation must still see every column.
    records = flatten([{"source": "a:1", "raw": {"id": "1", "prompt": "", "response": "r"}}])
    path = tmp_path / "contract.yaml"
    path.write_text(
        "name: t\nexpectations:\n"
        "  - {type: expect_column_values_to_not_match_regex, kwargs: {column: prompt, regex: '^$'},"
        " reason: empty}\n"
    )
    assert failing_rows(records, load_contract(str(path))) == ({0: "empty"}, {"empty": 1})
    path.write_text(
        "name: t\nexpectations:\n  - {type: expect_table_column_count_to_equal, "
        f"kwargs: {{value: {len(FLAT_COLUMNS)}}}, reason: columns}}\n"
    )
    assert failing_rows(records, load_contract(str(path)))[1] == {"columns": 0}
