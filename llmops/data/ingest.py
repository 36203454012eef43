"""Read JSONL, JSON, CSV and Parquet from local paths, globs or s3:// URLs (fsspec), and
normalize instruction and chat records to one flat form for validation.

A line or item that cannot be decoded or parsed is not an exception: it becomes a rejected
record with its location, so nothing is lost and nothing crashes the run.
"""

import csv
import io
import json
from typing import Any

import fsspec
import pandas as pd

from llmops.data.errors import SourceUnreadableError

FORMATS = (".jsonl", ".json", ".csv", ".parquet")


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
    try:
        with fsspec.open(url, "rb", **storage_options) as handle:
            data = handle.read()
    except (OSError, PermissionError) as error:
        raise SourceUnreadableError(f"cannot read {url}: {error}") from error
    name = url.rsplit("/", 1)[-1]
    if url.endswith(".jsonl"):
        return _read_jsonl(name, data)
    if url.endswith(".json"):
        return _read_json_array(name, data)
    if url.endswith(".csv"):
        return _read_csv(name, data)
    if url.endswith(".parquet"):
        frame = pd.read_parquet(io.BytesIO(data))
        rows = frame.to_dict(orient="records")
        return [{"source": f"{name}:{i + 1}", "raw": row} for i, row in enumerate(rows)], []
    raise SourceUnreadableError(f"unknown format: {url} (expected {', '.join(FORMATS)})")


def _reject(source: str, reason: str) -> dict:
    return {"record_id": source, "source": source, "reason": reason, "stage": "ingest"}


def _read_jsonl(name: str, data: bytes) -> tuple[list[dict], list[dict]]:
    items, rejected = [], []
    for number, line in enumerate(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1):
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
        if isinstance(raw, dict):
            items.append({"source": source, "raw": raw})
        else:
            rejected.append(_reject(source, "not a JSON object"))
    return items, rejected


def _read_json_array(name: str, data: bytes) -> tuple[list[dict], list[dict]]:
    try:
        parsed = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return [], [_reject(f"{name}:1", f"invalid JSON document: {error}")]
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
        return [], [_reject(f"{name}:1", "undecodable: not valid UTF-8")]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    # Row numbers, not physical lines: quoted fields may span lines.
    return [{"source": f"{name}:row{i}", "raw": row} for i, row in enumerate(reader, 1)], []


def flatten(items: list[dict]) -> pd.DataFrame:
    """One row per item with the columns the data contract speaks about.

    prompt/response are the last user turn and the final assistant turn; `roles` is the role
    sequence ("system,user,assistant") so a contract can check the order; *_is_text flags
    values that are not strings (a number where text belongs).
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
        rows.append(
            {
                "row": position,
                "record_id": record_id,
                "source": item["source"],
                "messages": messages,
                "roles": ",".join(str(m.get("role")) for m in messages),
                "prompt": prompt if isinstance(prompt, str) else None,
                "response": assistant if isinstance(assistant, str) else None,
                "all_text": all(isinstance(m.get("content"), str) for m in messages),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "row",
            "record_id",
            "source",
            "messages",
            "roles",
            "prompt",
            "response",
            "all_text",
        ],
    )


def _messages_of(raw: dict) -> list[dict]:
    if isinstance(raw.get("messages"), list):
        return [m if isinstance(m, dict) else {"role": None, "content": m} for m in raw["messages"]]
    head = [{"role": "system", "content": raw["system"]}] if raw.get("system") else []
    turns = []
    if "prompt" in raw:
        turns.append({"role": "user", "content": raw["prompt"]})
    if "response" in raw and raw["response"] not in (None, ""):
        turns.append({"role": "assistant", "content": raw["response"]})
    return head + turns
