from pathlib import Path

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
