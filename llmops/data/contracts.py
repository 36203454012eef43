"""Data contracts: YAML files in data_contracts/ turned into a Great Expectations suite, run
once over the whole batch, with every failing row quarantined under its expectation's reason."""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import pandas as pd
import yaml

from llmops.data.dedup import DedupKey
from llmops.records import RECORD_FIELDS

CONTRACT_KEYS = {"name", "max_failed_fraction", "expectations", "deduplication", "slices"}
ConflictPolicy = Literal["keep", "drop"]


@dataclass(frozen=True)
class Deduplication:
    """What makes two records duplicates, and what happens to another answer to a prompt."""

    key: DedupKey = "example"  # the text compared for exact and near duplicates
    decontamination_key: DedupKey = "prompt"  # the text an eval record must not share with train
    conflicting_answers: ConflictPolicy = "keep"  # records answering a prompt differently


@dataclass(frozen=True)
class Contract:
    """A parsed contract: GX expectation dicts plus the human reason for each, and the rules
    of deduplication."""

    name: str
    max_failed_fraction: float
    expectations: tuple[dict, ...]
    reasons: tuple[str, ...]
    text: str  # the file's bytes as text, part of the dataset id
    deduplication: Deduplication = Deduplication()
    slices: tuple[str, ...] = ()  # metadata fields evaluation reports metrics per value of


def load_contract(path: str) -> Contract:
    """Read and check a contract file; unknown keys or expectation types are errors now."""
    contract = parse_contract(path)
    build_suite(contract)  # fails fast on an unknown expectation type or argument
    return contract


def parse_contract(path: str) -> Contract:
    """Read a contract file and check all but its expectations, which only Great Expectations
    (seconds to import) can check: enough to name the dataset it makes."""
    text = Path(path).read_text()
    data = yaml.safe_load(text) or {}
    unknown = set(data) - CONTRACT_KEYS
    if unknown:
        raise ValueError(f"contract {path}: unknown keys {sorted(unknown)}")
    specs = data.get("expectations") or []
    return Contract(
        name=data["name"],
        max_failed_fraction=float(data.get("max_failed_fraction", 0.0)),
        expectations=tuple({"type": s["type"], "kwargs": s.get("kwargs", {})} for s in specs),
        reasons=tuple(s.get("reason") or s["type"] for s in specs),
        text=text,
        deduplication=parse_deduplication(data.get("deduplication") or {}, path),
        slices=parse_slices(data.get("slices") or [], path),
    )


def parse_deduplication(section: dict, path: str) -> Deduplication:
    """The contract's `deduplication:` section; unknown keys or values are errors now."""
    allowed = {
        "key": get_args(DedupKey),
        "decontamination_key": get_args(DedupKey),
        "conflicting_answers": get_args(ConflictPolicy),
    }
    unknown = set(section) - set(allowed)
    if unknown:
        raise ValueError(f"contract {path}: unknown deduplication keys {sorted(unknown)}")
    for name, value in section.items():
        if value not in allowed[name]:
            raise ValueError(
                f"contract {path}: deduplication.{name} is {value!r}, expected one of "
                f"{list(allowed[name])}"
            )
    rules = Deduplication(**section)
    if rules.key == "prompt" and rules.conflicting_answers == "keep":
        # Keying on the prompt keeps one record per prompt, so another answer cannot stay.
        raise ValueError(
            f"contract {path}: deduplication.key prompt keeps one answer per prompt; "
            "set conflicting_answers: drop (or key: example to keep them)"
        )
    return rules


def parse_slices(fields: object, path: str) -> tuple[str, ...]:
    """The contract's `slices:` list: distinct metadata field names, not the record's own."""
    if not isinstance(fields, list) or not all(isinstance(f, str) and f for f in fields):
        raise ValueError(f"contract {path}: slices must be a list of metadata field names")
    reserved = sorted(set(fields) & RECORD_FIELDS)
    if reserved or len(set(fields)) != len(fields):
        raise ValueError(
            f"contract {path}: slices {fields} repeat a field or name a record field {reserved}"
        )
    return tuple(fields)


def build_suite(contract: Contract):
    """The GX ExpectationSuite for a contract."""
    import great_expectations as gx

    return gx.ExpectationSuite(
        name=contract.name, expectations=[dict(e) for e in contract.expectations]
    )


def failing_rows(frame: pd.DataFrame, contract: Contract) -> tuple[dict[int, str], dict]:
    """Validate `frame` (which has an int column `row`) with GX; return the first failing
    expectation's reason per failing row, and a summary per expectation for people."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("records")
        .add_dataframe_asset("records")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": _checked_columns(frame, contract)})
    )
    result = batch.validate(
        build_suite(contract),
        result_format={
            "result_format": "COMPLETE",
            "unexpected_index_column_names": ["row"],
            "exclude_unexpected_values": True,
        },
    )
    failures: dict[int, str] = {}
    summary = {}
    for expectation_result in result.results:
        reason = _reason_for(contract, expectation_result.expectation_config)
        if expectation_result.exception_info.get("raised_exception"):
            raise RuntimeError(
                f"contract {contract.name}: expectation '{reason}' could not run: "
                f"{expectation_result.exception_info.get('exception_message')}"
            )
        rows = _unexpected_rows(expectation_result.result)
        summary[reason] = len(rows)
        for row in rows:
            failures.setdefault(row, reason)
    return failures, summary


def _checked_columns(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """The frame with a clean index, cut to `row` and the columns the expectations name when
    each names one: GX's batch costs time for every column, and the messages and metadata
    (lists and dicts) double it. A table-level expectation sees the whole frame."""
    named = [e["kwargs"].get("column") for e in contract.expectations]
    if all(isinstance(c, str) and c in frame for c in named):  # else GX names what is wrong
        frame = frame[["row", *dict.fromkeys(c for c in named if c != "row")]]
    return frame.reset_index(drop=True)


def _reason_for(contract: Contract, config) -> str:
    """The contract reason of a GX result (GX does not keep the suite's order)."""
    for spec, reason in zip(contract.expectations, contract.reasons, strict=True):
        if spec["type"] == config.type and all(
            config.kwargs.get(key) == value for key, value in spec["kwargs"].items()
        ):
            return reason
    return config.type


def _unexpected_rows(result: dict) -> list[int]:
    """GX lists failing rows as [{"row": [..]}] when values are excluded, else [{"row": n}]."""
    rows: list[int] = []
    for entry in result.get("unexpected_index_list") or []:
        value = entry["row"]
        rows += list(value) if isinstance(value, list) else [value]
    return [int(r) for r in rows]
