"""Document sources: JSONL / parquet / plain text / in-memory / python; malformed records name file and line."""

import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nemotron_jax.data.sources import (BadRecordError, JsonlSource, MemorySource, ParquetSource, TextFileSource,
                                       expand_paths, open_source)


def _write_jsonl(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_jsonl_reads_documents_and_skips_blank_lines(tmp_path):
    p = _write_jsonl(tmp_path / "a.jsonl", [json.dumps({"text": "one"}), "", "   ",
                                            json.dumps({"text": "two\nlines", "id": 2}),
                                            json.dumps({"text": "héllo"})])
    src = JsonlSource(p)
    assert len(src) == 3
    assert [src[i] for i in range(3)] == ["one", "two\nlines", "héllo"]


def test_jsonl_nested_field_and_multiple_files(tmp_path):
    d = tmp_path / "shards"
    d.mkdir()
    _write_jsonl(d / "b.jsonl", [json.dumps({"meta": {"body": f"b{i}"}}) for i in range(2)])
    _write_jsonl(d / "a.jsonl", [json.dumps({"meta": {"body": f"a{i}"}}) for i in range(3)])
    (d / "notes.md").write_text("not data")
    src = JsonlSource(str(d), text_field="meta.body")
    assert [src[i] for i in range(len(src))] == ["a0", "a1", "a2", "b0", "b1"]  # files in sorted order


@pytest.mark.parametrize("line, reason", [
    ('{"text": "cut off', "malformed JSON"),
    ('{"body": "no text"}', "no field 'text'"),
    ('{"text": 17}', "field 'text' is int"),
    ('["text"]', "no field 'text'"),
])
def test_jsonl_bad_record_names_file_and_line(tmp_path, line, reason):
    p = _write_jsonl(tmp_path / "bad.jsonl", [json.dumps({"text": "ok"}), "", line])
    src = JsonlSource(p)
    assert src[0] == "ok"
    with pytest.raises(BadRecordError, match=reason) as e:
        src[1]
    assert e.value.where == f"{p}:3"  # 1-based line number, counting the blank line
    assert str(e.value).startswith(f"{p}:3: ")


def test_jsonl_invalid_utf8(tmp_path):
    p = tmp_path / "u.jsonl"
    p.write_bytes(b'{"text": "fine"}\n{"text": "bad \xff byte"}\n')
    with pytest.raises(BadRecordError, match="UTF-8") as e:
        JsonlSource(str(p))[1]
    assert e.value.where == f"{p}:2"


def test_parquet_rows_across_row_groups_and_null_rows(tmp_path):
    p = str(tmp_path / "d.parquet")
    texts = [f"doc {i}" for i in range(10)]
    texts[7] = None
    pq.write_table(pa.table({"content": texts, "n": list(range(10))}), p, row_group_size=3)
    src = ParquetSource(p, text_field="content")
    assert len(src) == 10
    assert [src[i] for i in (0, 4, 9, 3)] == ["doc 0", "doc 4", "doc 9", "doc 3"]
    with pytest.raises(BadRecordError, match="'content' is NoneType") as e:
        src[7]
    assert e.value.where == f"{p}:row 7"
    with pytest.raises(ValueError, match="no column 'text'"):
        ParquetSource(p)
    tiny_cache = ParquetSource(p, text_field="content", cache_bytes=1)  # evicts all but the newest row group
    assert [tiny_cache[i] for i in (9, 0, 5, 1)] == ["doc 9", "doc 0", "doc 5", "doc 1"]
    assert len(tiny_cache._cache) == 1


def test_text_one_document_per_file(tmp_path):
    for name, body in (("b.txt", "second\n\nfile"), ("a.py", "def f():\n    return 1\n")):
        (tmp_path / name).write_text(body)
    src = TextFileSource(str(tmp_path))
    assert [src[0], src[1]] == ["def f():\n    return 1\n", "second\n\nfile"]


def test_text_blank_line_blocks_and_utf8_error_line(tmp_path):
    p = tmp_path / "blocks.txt"
    p.write_bytes(b"first block\nstill first\n\n\nsecond\n  \nthird \xff here\nmore\n")
    src = TextFileSource(str(p), unit="blocks")
    assert len(src) == 3
    assert src[0] == "first block\nstill first" and src[1] == "second"
    with pytest.raises(BadRecordError, match="UTF-8") as e:
        src[2]
    assert e.value.where == f"{p}:7"


def test_memory_source_and_python_kind(tmp_path, monkeypatch):
    src = MemorySource(iter(["a", "b", None]), name="toy")
    assert len(src) == 3 and src[1] == "b"
    with pytest.raises(BadRecordError) as e:
        src[2]
    assert e.value.where == "toy:index 2"
    (tmp_path / "my_corpus.py").write_text("def docs(n, prefix='d'):\n    return [f'{prefix}{i}' for i in range(n)]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    src = open_source("python", "my_corpus:docs", kwargs={"n": 4, "prefix": "x"})
    assert [src[i] for i in range(len(src))] == ["x0", "x1", "x2", "x3"]
    with pytest.raises(ValueError, match="module:function"):
        open_source("python", "my_corpus.docs")
    sys.modules.pop("my_corpus", None)


def test_open_source_infers_kind_and_reports_missing_files(tmp_path):
    _write_jsonl(tmp_path / "x.jsonl", [json.dumps({"text": "j"})])
    pq.write_table(pa.table({"text": ["p"]}), str(tmp_path / "x.parquet"))
    (tmp_path / "x.txt").write_text("t")
    assert isinstance(open_source("auto", str(tmp_path / "x.jsonl")), JsonlSource)
    assert isinstance(open_source("auto", str(tmp_path / "x.parquet")), ParquetSource)
    assert isinstance(open_source("auto", str(tmp_path / "*.txt")), TextFileSource)
    with pytest.raises(FileNotFoundError, match="missing"):
        open_source("auto", str(tmp_path / "missing*.jsonl"))
    with pytest.raises(ValueError, match="kind"):
        open_source("csv", str(tmp_path / "x.txt"))
    assert expand_paths(str(tmp_path), (".jsonl",)) == [str(tmp_path / "x.jsonl")]
