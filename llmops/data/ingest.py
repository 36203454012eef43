"""Read JSONL, JSON, CSV and Parquet from local paths, globs or s3:// URLs (fsspec), and
normalize instruction and chat records to one flat form for validation.

A line, item or row that cannot be decoded or parsed is not an exception: it becomes a rejected
record with its location, so nothing is lost and nothing crashes the run. A file whose bytes
hold no records at all (empty, binary, a broken Parquet file) becomes one rejected entry named
after the file. Only a file that cannot be read (no permission, a FIFO, a dangling link) stops
the run, with a one-line SourceUnreadableError: its records cannot even be counted.
"""

import csv
import io
import json
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa

from llmops.data.dedup import normalize
from llmops.data.errors import SourceUnreadableError
from llmops.records import RECORD_FIELDS

FORMATS = (".jsonl", ".json", ".csv", ".parquet")
TEXT_FORMATS = (".jsonl", ".json", ".csv")


def expand_sources(sources: list[str], storage_options: dict[str, Any]) -> list[str]:
    """Every data file behind the given files, folders and globs, sorted (a stable order)."""
    files: list[str] = []
    for source in sources:
        fs, path = fsspec.core.url_to_fs(source, **storage_options)
        protocol = source.split("://")[0] + "://" if "://" in source else ""
        if any(ch in path for ch in "*?["):
            found = fs.glob(path)
        elif fs.isdir(path):
            found = [p for p in fs.find(path) if p.endswith(FORMATS)]
        elif fs.exists(path):
            found = [path]
        else:
            raise SourceUnreadableError(f"source not found: {source}")
        files += [protocol + p if protocol and not p.startswith(protocol) else p for p in found]
    if not files:
        raise SourceUnreadableError(f"no {'/'.join(FORMATS)} files in {sources}")
    return sorted(files)


def read_file(url: str, storage_options: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """Parse one file into (items, rejected); an item is {"source": "file:line", "raw": dict}."""
    if not url.endswith(FORMATS):
        raise SourceUnreadableError(f"unknown format: {url} (expected {', '.join(FORMATS)})")
    data = read_bytes(url, storage_options)
    name = url.rsplit("/", 1)[-1]
    if not data:
        return [], [_reject(name, "empty file (0 bytes)")]
    # No JSON or CSV text holds a NUL byte; without this a binary file would be split on its
    # newline bytes into thousands of undecodable "records".
    if url.endswith(TEXT_FORMATS) and b"\0" in data:
        return [], [_reject(name, "binary file, not text")]
    if url.endswith(".jsonl"):
        return _read_jsonl(name, data)
    if url.endswith(".json"):
        return _read_json_array(name, data)
    if url.endswith(".csv"):
        return _read_csv(name, data)
    return _read_parquet(name, data)


def read_bytes(url: str, storage_options: dict[str, Any]) -> bytes:
    """The file's bytes; a one-line SourceUnreadableError when it cannot be read."""
    try:
        with open_regular_file(url, storage_options) as handle:
            return handle.read()
    except OSError as error:
        raise SourceUnreadableError(f"cannot read {url}: {error}") from error


def open_regular_file(url: str, storage_options: dict[str, Any]):
    """The file opened for binary reading; SourceUnreadableError when it is no regular file."""
    fs, path = fsspec.core.url_to_fs(url, **storage_options)
    # Opening a FIFO blocks until something writes to it, and a device may never end.
    if fs.info(path)["type"] != "file":
        raise SourceUnreadableError(
            f"cannot read {url}: not a regular file (a FIFO, socket or device)"
        )
    return fs.open(path, "rb")


def _reject(source: str, reason: str) -> dict:
    return {"record_id": source, "source": source, "reason": reason, "stage": "ingest"}


def quarantined_rows(records: pd.DataFrame, failures: dict[int, str]) -> list[dict]:
    """Rejected rows of the records that fail the contract (`failures`: row -> reason)."""
    return [
        {
            "record_id": records.at[row, "record_id"],
            "source": records.at[row, "source"],
            "reason": "quarantined",
            "detail": reason,
        }
        for row, reason in sorted(failures.items())
    ]


def quarantined_at_ingest(rejected: list[dict]) -> list[dict]:
    """Rejected rows of what held no record (the reader's reason becomes the detail)."""
    return [{**r, "reason": "quarantined", "detail": r["reason"]} for r in rejected]


def read_jsonl_lines(
    url: str, start: int, end: int, first_line: int, storage_options: dict[str, Any]
) -> tuple[list[dict], list[dict]]:
    """Parse the whole lines in bytes [start, end) of a JSONL file, numbered from `first_line`
    (a shard of a file too large to hold at once; see llmops.data.shards)."""
    try:
        fs, path = fsspec.core.url_to_fs(url, **storage_options)
        with fs.open(path, "rb") as handle:
            handle.seek(start)
            data = handle.read(end - start)
    except OSError as error:
        raise SourceUnreadableError(f"cannot read {url}: {error}") from error
    return _read_jsonl(url.rsplit("/", 1)[-1], data, first_line)


def _read_jsonl(name: str, data: bytes, first_line: int = 1) -> tuple[list[dict], list[dict]]:
    items, rejected = [], []
    if first_line == 1:  # a byte-order mark can only open the file
        data = data.removeprefix(b"\xef\xbb\xbf")
    lines = data.split(b"\n")
    for number, line in enumerate(lines, start=first_line):
        line = line.rstrip(b"\r")
        if not line.strip():
            continue
        source = f"{name}:{number}"
        try:
            raw = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            rejected.append(_reject(source, "undecodable: not valid UTF-8"))
            continue
        except json.JSONDecodeError as error:
            rejected.append(_reject(source, f"invalid JSON: {error.msg}"))
            continue
        except RecursionError:
            rejected.append(_reject(source, "invalid JSON: nested too deeply"))
            continue
        if isinstance(raw, dict):
            items.append({"source": source, "raw": raw})
        else:
            rejected.append(_reject(source, "not a JSON object"))
    return items, rejected


def _read_json_array(name: str, data: bytes) -> tuple[list[dict], list[dict]]:
    try:
        parsed = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        return [], [_reject(name, f"invalid JSON document: {error}")]
    rows = parsed if isinstance(parsed, list) else [parsed]
    items, rejected = [], []
    for number, raw in enumerate(rows, start=1):
        source = f"{name}:{number}"
        if isinstance(raw, dict):
            items.append({"source": source, "raw": raw})
        else:
            rejected.append(_reject(source, "not a JSON object"))
    return items, rejected


def _read_csv(name: str, data: bytes) -> tuple[list[dict], list[dict]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return [], [_reject(name, "undecodable: not valid UTF-8")]
    reader = csv.reader(io.StringIO(text, newline=""))
    items, rejected = [], []
    header: list[str] | None = None
    number = 0  # rows, not physical lines: quoted fields may span lines; blank rows skipped
    try:
        for row in reader:
            if not row:
                continue
            if header is None:
                header = row
                continue
            number += 1
            source = f"{name}:row{number}"
            if len(row) == len(header):
                items.append({"source": source, "raw": dict(zip(header, row, strict=True))})
            else:
                reason = f"ragged CSV row: {len(row)} fields, the header has {len(header)}"
                rejected.append(_reject(source, reason))
    except csv.Error as error:  # e.g. a field over csv's size limit: the rest cannot be split
        rejected.append(_reject(f"{name}:row{number + 1}", f"unreadable CSV from here: {error}"))
    return items, rejected


def _read_parquet(name: str, data: bytes) -> tuple[list[dict], list[dict]]:
    try:
        frame = pd.read_parquet(io.BytesIO(data))
    except (pa.ArrowException, OSError) as error:  # truncated or corrupt
        return [], [_reject(name, f"unreadable Parquet: {str(error).splitlines()[0]}")]
    rows = frame.to_dict(orient="records")
    return [{"source": f"{name}:{i + 1}", "raw": row} for i, row in enumerate(rows)], []


FLAT_COLUMNS = [
    "row",
    "record_id",
    "source",
    "messages",
    "roles",
    "prompt",
    "response",
    "rejected",
    "rejected_differs",
    "all_text",
    "characters",
    "metadata",
]


def flatten(items: list[dict]) -> pd.DataFrame:
    """One row per item with the columns the data contract speaks about.

    prompt/response are the last user turn and the final assistant turn; `roles` is the role
    sequence ("system,user,assistant") so a contract can check the order; `all_text` flags
    values that are not strings (a number where text belongs); `characters` is the length of
    all text in the record, so a contract can bound every turn and the system message too.
    A preference pair (a row with `chosen`/`rejected`) ends its messages with the chosen answer;
    `rejected` is its rejected answer (None elsewhere) and `rejected_differs` whether the two
    differ beyond case, spacing and punctuation. `metadata` holds the row's other scalar fields.
    """
    rows = []
    for position, item in enumerate(items):
        raw = item["raw"]
        record_id = str(raw["id"]) if raw.get("id") not in (None, "") else item["source"]
        messages = _messages_of(raw)
        users = [m.get("content") for m in messages if m.get("role") == "user"]
        assistant = (
            messages[-1].get("content")
            if messages and messages[-1].get("role") == "assistant"
            else None
        )
        prompt = users[-1] if users else None
        response = assistant if isinstance(assistant, str) else None
        rejected = raw.get("rejected")
        texts = [m["content"] for m in messages if _is_text(m)]
        texts += [rejected] if isinstance(rejected, str) else []
        rows.append(
            {
                "row": position,
                "record_id": record_id,
                "source": item["source"],
                "messages": messages,
                "roles": ",".join(str(m.get("role")) for m in messages),
                "prompt": prompt if isinstance(prompt, str) else None,
                "response": response,
                "rejected": rejected if isinstance(rejected, str) else None,
                "rejected_differs": _differs(response, rejected) if _is_pair(raw) else None,
                "all_text": all(_is_text(m) for m in messages)
                and (rejected is None or isinstance(rejected, str)),
                "characters": sum(len(text) for text in texts),
                "metadata": _metadata_of(raw),
            }
        )
    return pd.DataFrame(rows, columns=FLAT_COLUMNS)


def _is_text(message: dict) -> bool:
    return isinstance(message.get("content"), str)


def _is_pair(raw: dict) -> bool:
    return "chosen" in raw or "rejected" in raw


def _differs(chosen: str | None, rejected: Any) -> bool | None:
    """None when either answer is missing (other expectations report that)."""
    if not isinstance(chosen, str) or not isinstance(rejected, str):
        return None
    return normalize(chosen) != normalize(rejected)


def _metadata_of(raw: dict) -> dict[str, str]:
    """The row's scalar fields other than the record's own, as strings; missing values and
    lists or objects are left out (a slice is one value per record)."""
    return {
        str(key): str(value)
        for key, value in raw.items()
        if key not in RECORD_FIELDS
        and pd.api.types.is_scalar(value)
        and not pd.isna(value)
        and str(value) != ""
    }


def _messages_of(raw: dict) -> list[dict]:
    """A pair's prompt turns end with its chosen answer; an instruction row's with its response."""
    answer = raw.get("chosen") if _is_pair(raw) else raw.get("response")
    if isinstance(raw.get("messages"), list):
        turns = [
            m if isinstance(m, dict) else {"role": None, "content": m} for m in raw["messages"]
        ]
        if _is_pair(raw) and answer not in (None, ""):
            turns.append({"role": "assistant", "content": answer})
        return turns
    head = [{"role": "system", "content": raw["system"]}] if raw.get("system") else []
    turns = []
    if "prompt" in raw:
        turns.append({"role": "user", "content": raw["prompt"]})
    if answer not in (None, ""):
        turns.append({"role": "assistant", "content": answer})
    return head + turns
