"""Readers and examples: every bad input stops with file, line and problem; good input parses."""

import pytest

from bertx.data.examples import read_examples
from bertx.data.readers import read_rows
from bertx.errors import DataError
from bertx.tasks import TASKS

CLS, REG, MULTI, PAIR = TASKS["classification"], TASKS["regression"], TASKS["multilabel"], TASKS["pair-classification"]


def write(tmp_path, name, text, mode="w"):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def test_tsv_keeps_quotes_as_text(tmp_path):
    path = write(tmp_path, "a.tsv", 'sentence\tlabel\nhe said " hi\t1\n"quoted" word\t0\n')
    examples, columns = read_examples(path, CLS)
    assert [e.text for e in examples] == ['he said " hi', '"quoted" word']
    assert [e.label for e in examples] == ["1", "0"] and columns.text == "sentence"


def test_csv_and_jsonl_and_named_columns(tmp_path):
    csv_path = write(tmp_path, "a.csv", 'review,stars\n"good, really",pos\nbad,neg\n')
    examples, _ = read_examples(csv_path, CLS, text_column="review", label_column="stars")
    assert [(e.text, e.label) for e in examples] == [("good, really", "pos"), ("bad", "neg")]
    jsonl = write(tmp_path, "a.jsonl", '{"text": "x y", "label": 2}\n\n{"text": "z", "label": 0}\n')
    examples, _ = read_examples(jsonl, CLS)
    assert [(e.text, e.label, e.line) for e in examples] == [("x y", "2", 1), ("z", "0", 3)]


def test_pair_columns_detected(tmp_path):
    path = write(tmp_path, "p.tsv", "sentence1\tsentence2\tlabel\na\tb\tyes\n")
    (example,), columns = read_examples(path, PAIR)
    assert (example.text, example.text_pair, columns.text_pair) == ("a", "b", "sentence2")


@pytest.mark.parametrize(
    "name,content,task,line,message",
    [
        ("cols.tsv", "sentence\tlabel\ngood\t1\nbad\t0\textra\n", CLS, 3, "row has 3 columns, the header has 2"),
        ("empty_text.tsv", "sentence\tlabel\ngood\t1\n  \t0\n", CLS, 3, "empty text"),
        ("nolabel.tsv", "sentence\tstars\ngood\t1\n", CLS, 1, "no label column 'label'"),
        ("notext.tsv", "body\tlabel\ngood\t1\n", CLS, 1, "no text column"),
        ("nopair.tsv", "sentence1\tlabel\ngood\t1\n", PAIR, 1, "no second-text column"),
        ("reg.tsv", "sentence\tlabel\ngood\t1.5\nbad\thigh\n", REG, 3, "regression target 'high' is not a number"),
        ("empty_label.tsv", "sentence\tlabel\ngood\t\n", CLS, 2, "empty label"),
        ("bad.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label"\n', CLS, 2, "not valid JSON"),
        ("list.jsonl", "[1, 2]\n", CLS, 1, "must be an object"),
    ],
)
def test_bad_rows_name_file_line_and_problem(tmp_path, name, content, task, line, message):
    path = write(tmp_path, name, content)
    with pytest.raises(DataError) as err:
        read_examples(path, task)
    assert err.value.line == line and err.value.path == path
    assert message in str(err.value) and str(err.value).startswith(f"{path}:{line}: ")


def test_broken_utf8_names_its_line(tmp_path):
    path = write(tmp_path, "bad.tsv", b"sentence\tlabel\ngood\t1\nbad \xff\xfe text\t0\n")
    with pytest.raises(DataError, match=r"bad.tsv:3: not valid UTF-8"):
        read_rows(path)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file(tmp_path, content):
    path = write(tmp_path, "empty.tsv", content)
    with pytest.raises(DataError, match="file is empty"):
        read_rows(path)


def test_header_only_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="header but no rows"):
        read_rows(write(tmp_path, "h.tsv", "sentence\tlabel\n"))
    with pytest.raises(DataError, match="file not found"):
        read_rows(tmp_path / "nope.tsv")


def test_multilabel_parsing(tmp_path):
    path = write(tmp_path, "m.jsonl", '{"text": "a", "label": ["x", "y"]}\n{"text": "b", "label": []}\n')
    examples, _ = read_examples(path, MULTI)
    assert [e.label for e in examples] == [["x", "y"], []]
    tsv = write(tmp_path, "m.tsv", "text\tlabel\na\ty, x\nb\tz\n")
    examples, _ = read_examples(tsv, MULTI)
    assert [e.label for e in examples] == [["x", "y"], ["z"]]


def test_limit_reads_first_examples(tmp_path):
    path = write(tmp_path, "a.tsv", "sentence\tlabel\n" + "".join(f"t{i}\t{i % 2}\n" for i in range(10)))
    examples, _ = read_examples(path, CLS, limit=3)
    assert [e.text for e in examples] == ["t0", "t1", "t2"]
