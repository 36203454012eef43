import io
import os
from pathlib import Path

import pandas as pd
import pytest

from llmops.data.errors import SourceUnreadableError
from llmops.data.ingest import expand_sources, flatten, read_file


def test_jsonl_with_bom_crlf_bad_bytes_and_bad_json(tmp_path: Path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(
        b'\xef\xbb\xbf{"id": "1", "prompt": "p", "response": "r"}\r\n'
        b'{"id": "2", "prompt": "caf\xe9"}\r\n'
        b'{"id": "3", "prompt": \r\n'
        b"[1, 2]\r\n"
    )
    items, rejected = read_file(str(path), {})
    assert [i["raw"]["id"] for i in items] == ["1"]
    assert [(r["source"], r["reason"].split(":")[0]) for r in rejected] == [
        ("a.jsonl:2", "undecodable"),
        ("a.jsonl:3", "invalid JSON"),
        ("a.jsonl:4", "not a JSON object"),
    ]


def test_csv_multiline_fields_and_chat_json(tmp_path: Path):
    (tmp_path / "b.csv").write_text('id,prompt,response\n7,"a, b\nc","ok"\n', encoding="utf-8")
    (tmp_path / "c.json").write_text(
        '[{"messages": [{"role": "user", "content": "hi"},'
        ' {"role": "assistant", "content": "yo"}]}]'
    )
    items = []
    for url in expand_sources([str(tmp_path)], {}):
        items += read_file(url, {})[0]
    frame = flatten(items)
    assert frame["prompt"].tolist() == ["a, b\nc", "hi"]
    assert frame["record_id"].tolist() == ["7", "c.json:1"]  # no id: its location
    assert frame["roles"].tolist() == ["user,assistant", "user,assistant"]


def test_missing_source_is_a_clear_error(tmp_path: Path):
    with pytest.raises(SourceUnreadableError, match="source not found"):
        expand_sources([str(tmp_path / "nope")], {})


def test_a_file_without_records_is_one_rejected_entry(tmp_path: Path):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "binary.jsonl").write_bytes(bytes(range(256)) * 64)  # NUL and newline bytes
    buffer = io.BytesIO()
    pd.DataFrame({"id": ["1", "2"], "prompt": ["q", "q2"], "response": ["r", "r2"]}).to_parquet(
        buffer
    )
    (tmp_path / "truncated.parquet").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    rejected = {}
    for url in expand_sources([str(tmp_path)], {}):
        items, file_rejected = read_file(url, {})
        assert items == []
        rejected |= {r["source"]: r["reason"] for r in file_rejected}
    assert rejected == {
        "binary.jsonl": "binary file, not text",
        "empty.jsonl": "empty file (0 bytes)",
        "truncated.parquet": "unreadable Parquet: Could not open Parquet input source "
        "'<Buffer>': Parquet magic bytes not found in footer. Either the file is corrupted or "
        "this is not a parquet file.",
    }


def test_ragged_csv_rows_and_non_objects_are_rejected_where_they_are(tmp_path: Path):
    (tmp_path / "a.csv").write_text(
        'id,prompt,response\n1,"q, one",r\n2,q,r,extra\n\n3,q\n4,"q\nfour",r\n'
    )
    (tmp_path / "b.json").write_text('[{"id": "5"}, 6, "seven", null, [8], {"id": "9"}]')
    items, rejected = [], []
    for url in expand_sources([str(tmp_path)], {}):
        file_items, file_rejected = read_file(url, {})
        items += file_items
        rejected += file_rejected
    assert [(i["source"], i["raw"]["id"]) for i in items] == [
        ("a.csv:row1", "1"),
        ("a.csv:row4", "4"),
        ("b.json:1", "5"),
        ("b.json:6", "9"),
    ]
    assert [(r["source"], r["reason"]) for r in rejected] == [
        ("a.csv:row2", "ragged CSV row: 4 fields, the header has 3"),
        ("a.csv:row3", "ragged CSV row: 2 fields, the header has 3"),
        *[(f"b.json:{n}", "not a JSON object") for n in (2, 3, 4, 5)],
    ]


def test_lines_too_big_or_too_deep_for_the_parsers_are_rejected(tmp_path: Path):
    (tmp_path / "deep.jsonl").write_text("[" * 100_000 + "\n" + '{"id": "ok"}\n')
    field = "x" * 200_000  # over the csv module's field limit (128 KiB)
    (tmp_path / "wide.csv").write_text(f'id,prompt,response\n1,q,r\n2,"{field}",r\n3,q,r\n')
    deep_items, deep_rejected = read_file(str(tmp_path / "deep.jsonl"), {})
    wide_items, wide_rejected = read_file(str(tmp_path / "wide.csv"), {})
    assert [i["raw"]["id"] for i in deep_items + wide_items] == ["ok", "1"]
    assert [(r["source"], r["reason"]) for r in deep_rejected + wide_rejected] == [
        ("deep.jsonl:1", "invalid JSON: nested too deeply"),
        ("wide.csv:row2", "unreadable CSV from here: field larger than field limit (131072)"),
    ]


def test_a_fifo_or_dangling_link_is_one_clear_error_not_a_hang(tmp_path: Path):
    os.mkfifo(tmp_path / "pipe.jsonl")  # opening it would block until something writes
    (tmp_path / "gone.jsonl").symlink_to(tmp_path / "missing.jsonl")
    files = expand_sources([str(tmp_path)], {})
    assert [Path(f).name for f in files] == ["gone.jsonl", "pipe.jsonl"]
    with pytest.raises(SourceUnreadableError, match=r"cannot read .*gone.jsonl: .*No such file"):
        read_file(files[0], {})
    with pytest.raises(SourceUnreadableError, match=r"cannot read .*pipe.jsonl: not a regular"):
        read_file(files[1], {})


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file anyway")
def test_a_file_without_read_permission_is_one_clear_error(tmp_path: Path):
    path = tmp_path / "locked.jsonl"
    path.write_text('{"id": "1"}\n')
    path.chmod(0)
    with pytest.raises(SourceUnreadableError, match="cannot read .*locked.jsonl: .*Permission"):
        read_file(str(path), {})
