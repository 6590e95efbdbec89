"""Shards without Ray: cut from the files' own structure, read back row for row, every row a record or a
located bad row, in every input format."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from bertx.errors import BertxError, DataError
from bertx.scale.cluster import split_cores
from bertx.scale.corpus import expand_inputs, header, plan_shards, read_shard
from bertx.scale.shard_worker import ShardWorker


def _rows(shards):
    return [(s.path, row.number, row.content, row.problem) for s in shards for row in read_shard(s, header(s.path, s.format))]


@pytest.mark.parametrize("shard_rows", [1, 3, 7, 100])
def test_shards_cover_every_line_once_whatever_their_size(tmp_path, shard_rows):
    (tmp_path / "a.txt").write_text("".join(f"text {i}\n" for i in range(20)))
    (tmp_path / "b.txt").write_text("x\ny\nno final newline")  # the last line has no newline
    (tmp_path / "c.tsv").write_text("sentence\tlabel\n" + "".join(f"s {i}\tpos\n" for i in range(10)))
    (tmp_path / "d.jsonl").write_text("\ufeff" + "".join(json.dumps({"text": f"j {i}"}) + "\n" for i in range(9)))
    shards = plan_shards(expand_inputs([str(tmp_path / "*.txt"), str(tmp_path / "c.tsv"), str(tmp_path / "d.jsonl")]), shard_rows)
    rows = _rows(shards)
    a = [(n, c) for p, n, c, _ in rows if p.endswith("a.txt")]
    assert a == [(i + 1, f"text {i}") for i in range(20)]
    assert [c for p, _, c, _ in rows if p.endswith("b.txt")] == ["x", "y", "no final newline"]
    assert [(n, c["sentence"]) for p, n, c, _ in rows if p.endswith("c.tsv")] == [(i + 2, f"s {i}") for i in range(10)]
    assert [c["text"] for p, _, c, _ in rows if p.endswith("d.jsonl")] == [f"j {i}" for i in range(9)]  # the BOM is dropped
    assert all(s.count <= shard_rows for s in shards)
    assert len({s.name for s in shards}) == len(shards)


def test_csv_records_with_line_breaks_and_parquet_row_groups(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    (tmp_path / "a.csv").write_text('text,label\n"two\nlines",pos\n' + "".join(f"c {i},neg\n" for i in range(6)))
    pq.write_table(pa.table({"text": [f"p {i}" for i in range(10)]}), tmp_path / "b.parquet", row_group_size=3)
    shards = plan_shards(expand_inputs([str(tmp_path / "a.csv"), str(tmp_path / "b.parquet")]), 4)
    rows = _rows(shards)
    assert [(n, c["text"]) for p, n, c, _ in rows if p.endswith(".csv")] == [(2, "two\nlines")] + [(i + 4, f"c {i}") for i in range(6)]
    assert [(n, c["text"]) for p, n, c, _ in rows if p.endswith(".parquet")] == [(i + 1, f"p {i}") for i in range(10)]
    assert [s.count for s in shards if s.format == "parquet"] == [3, 3, 4]  # whole row groups, gathered up to 4 rows


def test_unreadable_rows_are_located_not_fatal(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b'{"text": "fine"}\n{broken\n[1, 2]\n\n{"text": "caf\xe9"}\n{"text": "ok"}\n')
    (tmp_path / "b.txt").write_bytes(b"one\n\ntwo\x00\nthree\n")
    rows = _rows(plan_shards(expand_inputs([str(tmp_path / "a.jsonl"), str(tmp_path / "b.txt")]), 2))
    problems = {(p.rsplit("/", 1)[1], n): why for p, n, _, why in rows if why}
    assert problems[("a.jsonl", 2)].startswith("not valid JSON")
    assert problems[("a.jsonl", 3)] == "each JSONL line must be an object"
    assert problems[("a.jsonl", 5)].startswith("not valid UTF-8")
    assert problems[("b.txt", 2)] == "empty text" and problems[("b.txt", 3)].startswith("NUL byte")
    assert [c for p, _, c, why in rows if p.endswith("b.txt") and not why] == ["one", "three"]


def test_inputs_that_cannot_be_read_are_one_line(tmp_path):
    with pytest.raises(BertxError, match="no file matches"):
        expand_inputs([str(tmp_path / "*.jsonl")])
    (tmp_path / "x.docx").write_text("?")
    with pytest.raises(BertxError, match="unknown input format .docx"):
        expand_inputs([str(tmp_path / "x.docx")])
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataError, match="file is empty"):
        plan_shards(expand_inputs([str(tmp_path / "empty.txt")]), 10)


def test_cores_are_split_between_workers():
    assert split_cores(8, None) == split_cores(8, 8) and split_cores(8, None).threads == 1
    assert (split_cores(8, 2).workers, split_cores(8, 2).threads) == (2, 4)
    assert split_cores(2, 4).threads == 1  # more workers than cores: one thread each


LINES = st.lists(
    st.one_of(st.text(string.printable + "é😀\u2028", max_size=30), st.sampled_from(["", " ", "{", "[]", "null", '{"text": 3}'])),
    min_size=1,
    max_size=25,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=LINES, suffix=st.sampled_from([".txt", ".jsonl"]), shard_rows=st.integers(1, 9))
def test_every_generated_row_is_a_record_or_a_bad_row(classifier, tmp_path_factory, lines, suffix, shard_rows):
    """Issue 21's generated inputs, for corpus prediction: whatever a line holds, it gives one prediction or
    one bad row with its file and row, never an exception and never a lost row."""
    folder = tmp_path_factory.mktemp("generated")
    path = folder / f"in{suffix}"
    body = [json.dumps({"text": line}) if suffix == ".jsonl" and i % 2 else line for i, line in enumerate(lines)]
    path.write_text("\n".join(line.replace("\n", " ").replace("\r", " ") for line in body) + "\n", encoding="utf-8")
    worker = ShardWorker(str(classifier), str(folder))
    try:
        shards = plan_shards(expand_inputs([str(path)]), shard_rows)
        worker.columns(str(path), shards[0].format)
    except BertxError:
        return  # an empty file, or JSONL without a text column: one line before any work
    got = []
    for shard in shards:
        result = worker.run(shard)
        assert "error" not in result
        out = (folder / f"{shard.name}.jsonl").read_text(encoding="utf-8").split("\n")[:-1]  # JSONL lines end at \n only
        assert len(out) == result["predictions"]
        got += [json.loads(r)["row"] for r in out] + [b["row"] for b in result["bad"]]
        assert all(b["input"] == str(path) and b["problem"] for b in result["bad"])
    expected = [
        i + 1 for i, line in enumerate(path.read_text(encoding="utf-8").split("\n")[:-1]) if suffix == ".txt" or line.strip()
    ]  # blank JSONL lines are no rows, as in every reader
    assert sorted(got) == expected


# ---- content the job did not write is verified (issue 40) -------------------------------------------------------
def test_a_shard_whose_file_was_cut_under_the_job_is_an_error_not_a_hole(classifier, tmp_path):
    pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"sentence": f"film {i}"}) + "\n" for i in range(40)))
    pq.write_table(pa.table({"sentence": [f"film {i}" for i in range(40)]}), tmp_path / "b.parquet", row_group_size=10)
    worker = ShardWorker(str(classifier), str(tmp_path))
    for name, cut in (
        ("a.jsonl", lambda p: p.write_bytes(p.read_bytes()[:200])),
        ("b.parquet", lambda p: pq.write_table(pa.table({"sentence": ["x"] * 12}), p, row_group_size=10)),
    ):
        shards = plan_shards(expand_inputs([str(tmp_path / name)]), 16)
        cut(tmp_path / name)  # another process rewrites the input after the shards were planned
        results = [worker.run(s) for s in shards]
        assert any("changed while the job ran" in r.get("error", "") for r in results), results
        assert all("error" in r or r["predictions"] == r["count"] for r in results)


def test_rows_the_predictor_refuses_are_isolated_and_the_rest_predicted_as_one_batch(classifier, tmp_path, monkeypatch):
    texts = [f"a {'good' if i % 3 else 'dull'} film number {i}" for i in range(64)]
    (tmp_path / "in.txt").write_text("\n".join(t if i not in (5, 41) else "BAD " + t for i, t in enumerate(texts)) + "\n")
    (tmp_path / "clean.txt").write_text("\n".join(t for i, t in enumerate(texts) if i not in (5, 41)) + "\n")
    worker = ShardWorker(str(classifier), str(tmp_path))
    predict, calls = worker._predict, []

    def refusing(inputs):
        calls.append(len(inputs))
        if any("BAD" in x[1] for x in inputs):
            raise RuntimeError("the tokenizer cannot encode this\nsecond line")
        return predict(inputs)

    monkeypatch.setattr(worker, "_predict", refusing)
    shard = plan_shards(expand_inputs([str(tmp_path / "in.txt")]), 100)[0]
    records, bad = worker.predict(shard, read_shard(shard, []), None)
    assert [b["row"] for b in bad] == [6, 42] and bad[0]["problem"] == "cannot predict: the tokenizer cannot encode this"
    assert len(calls) <= 2 + 2 * 2 * 6 and calls[-1] == 62  # halving finds the two rows; the other 62 go in one call
    clean = plan_shards(expand_inputs([str(tmp_path / "clean.txt")]), 100)[0]
    alone, _ = worker.predict(clean, read_shard(clean, []), None)
    assert [r["probs"] for r in records] == [r["probs"] for r in alone]  # as if the bad rows were never there


def test_a_lone_surrogate_is_a_bad_row_and_parquet_keeps_every_field(classifier, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    (tmp_path / "a.jsonl").write_text('{"sentence": "fine"}\n{"sentence": "bad \\ud800 one"}\n{"sentence": "pair \\ud83d\\ude00 ok"}\n')
    shard = plan_shards(expand_inputs([str(tmp_path / "a.jsonl")]), 10)[0]
    rows = read_shard(shard, header(shard.path, shard.format))
    assert [r.problem for r in rows] == [None, "holds an unpaired surrogate ('\\ud800'): text no tokenizer can encode", None]
    worker = ShardWorker(str(classifier), str(tmp_path), output_format="parquet")
    data = worker._encode([{"text": "a", "label": "pos"}, {"text": "b", "label": "neg", "truncated": True}])
    import io

    assert pq.read_table(io.BytesIO(data)).to_pylist()[1] == {"text": "b", "label": "neg", "truncated": True}


def test_a_job_that_fails_its_checks_leaves_no_folder_and_a_changed_input_is_named(classifier, tmp_path):
    from bertx.scale import predict as corpus_job

    (tmp_path / "in.jsonl").write_text('{"other": "no text column"}\n')
    with pytest.raises(DataError):
        corpus_job.predict_corpus(corpus_job.CorpusJob(str(classifier), [str(tmp_path / "in.jsonl")], str(tmp_path / "out")))
    assert not (tmp_path / "out").exists()  # the corrected command is not refused by a folder it never used
    (tmp_path / "in.jsonl").write_text('{"text": "a film"}\n')
    files = expand_inputs([str(tmp_path / "in.jsonl")])
    corpus_job._check_inputs_unchanged(files)
    (tmp_path / "in.jsonl").write_text('{"text": "a film"}\n{"text": "another"}\n')
    with pytest.raises(BertxError, match=r"in.jsonl: changed while the job ran \(19 -> 39 bytes\)"):
        corpus_job._check_inputs_unchanged(files)
    before = {"model": "m", "inputs": [[files[0].path, 19, 1]]}
    assert corpus_job._changed_inputs(before, {"model": "m", "inputs": [[files[0].path, 42, 2]]}) == [files[0].path]
    assert corpus_job._changed_inputs(before, {"model": "other", "inputs": [[files[0].path, 42, 2]]}) == []
