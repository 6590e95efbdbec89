"""Tagged-word readers and the BIO scheme: columns, -DOCSTART-, JSONL, IOB1 conversion, repairs."""

import pytest

from bertx.data.conll import read_tagged
from bertx.errors import DataError
from bertx.tasks.bio import build_tag_space, encode_tags, normalise_tags


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_conll_columns_docstart_and_blank_lines(tmp_path):
    path = write(tmp_path, "a.txt", "-DOCSTART- -X- O O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n\nPeter NNP B-NP B-PER\n")
    sentences = read_tagged(path)
    assert [s.words for s in sentences] == [["EU", "rejects"], ["Peter"]]
    assert [s.tags for s in sentences] == [["B-ORG", "O"], ["B-PER"]]
    assert sentences[1].lines == [7]


def test_conll_word_without_tag_names_the_line(tmp_path):
    path = write(tmp_path, "a.txt", "EU B-ORG\nrejects\n")
    with pytest.raises(DataError, match=r"a.txt:2: word 'rejects' has no tag"):
        read_tagged(path)


def test_jsonl_tokens_and_tags(tmp_path):
    path = write(tmp_path, "a.jsonl", '{"tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"]}\n{"words": ["Bob"], "ner_tags": ["B-PER"]}\n')
    assert [s.tags for s in read_tagged(path)] == [["B-ORG", "O"], ["B-PER"]]


@pytest.mark.parametrize(
    "line, problem",
    [
        ('{"tokens": ["a", "b"], "tags": ["O"]}', "2 tokens but 1 tags"),
        ('{"tokens": ["a"]}', "missing field"),
        ('{"tokens": [], "tags": []}', "empty sentence"),
        ('{"tokens": ["a b"], "tags": ["O"]}', "contains whitespace"),
    ],
)
def test_jsonl_problems_name_the_line(tmp_path, line, problem):
    path = write(tmp_path, "a.jsonl", '{"tokens": ["x"], "tags": ["O"]}\n' + line + "\n")
    with pytest.raises(DataError, match=rf"a.jsonl:2: .*{problem}"):
        read_tagged(path)


def test_invalid_bio_is_repaired_and_counted(tmp_path):
    path = write(tmp_path, "a.txt", "a O\nb I-PER\nc I-PER\nd I-LOC\n")
    sentences = read_tagged(path)
    assert normalise_tags(sentences, path) == 2
    assert sentences[0].tags == ["O", "B-PER", "I-PER", "B-LOC"]


def test_invalid_bio_rejected_on_request(tmp_path):
    path = write(tmp_path, "a.txt", "a O\nb I-PER\n")
    with pytest.raises(DataError, match=r"a.txt:2: tag 'I-PER' follows 'O'"):
        normalise_tags(read_tagged(path), path, invalid="error")


def test_iob1_is_converted_without_counting_repairs(tmp_path):
    # IOB1: I- opens an entity; B- only separates two adjacent entities of one type.
    path = write(tmp_path, "a.txt", "Peter I-PER\nBlackburn I-PER\nJohn B-PER\nin O\nParis I-LOC\n")
    sentences = read_tagged(path)
    assert normalise_tags(sentences, path, scheme="iob1") == 0
    assert sentences[0].tags == ["B-PER", "I-PER", "B-PER", "O", "B-LOC"]


def test_tag_outside_the_scheme_is_an_error(tmp_path):
    path = write(tmp_path, "a.txt", "a O\nb S-PER\n")
    with pytest.raises(DataError, match=r"a.txt:2: tag 'S-PER' is not O, B-TYPE or I-TYPE"):
        normalise_tags(read_tagged(path), path)


def test_tag_space_has_both_prefixes_and_unknown_dev_tags_fail(tmp_path):
    train = read_tagged(write(tmp_path, "t.txt", "a B-PER\nb O\n"))
    labels = build_tag_space(train)
    assert labels == ["O", "B-PER", "I-PER"]
    dev_path = write(tmp_path, "d.txt", "a B-LOC\n")
    with pytest.raises(DataError, match=r"d.txt:1: tag 'B-LOC' was never seen in training"):
        encode_tags(read_tagged(dev_path)[0], {n: i for i, n in enumerate(labels)}, dev_path)
