"""Plain-text reading for pretraining: document layouts, sentence splitting, and bad files."""

import pytest

from bertx.data.text_corpus import iter_text, read_documents, split_sentences
from bertx.errors import BertxError, DataError


def test_split_sentences_on_end_punctuation_before_a_capital():
    assert split_sentences("It rained. Then it stopped! Why? 3 days later it rained.") == [
        "It rained.",
        "Then it stopped!",
        "Why?",
        "3 days later it rained.",
    ]
    # no split inside "e.g. the" or "3.5": the next word does not start a sentence
    assert split_sentences("Use e.g. the best one. It is 3.5 m long.") == ["Use e.g. the best one.", "It is 3.5 m long."]


def test_document_modes(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("One. Two.\nThree.\n\nFour.\n\n\nFive.\n", encoding="utf-8")
    assert list(read_documents([str(path)], "blank")) == [["One.", "Two.", "Three."], ["Four."], ["Five."]]
    assert list(read_documents([str(path)], "line")) == [["One.", "Two."], ["Three."], ["Four."], ["Five."]]


def test_wikitext_articles_drop_headings_and_undo_markup(tmp_path):
    path = tmp_path / "wiki.tokens"
    path.write_text(
        " = Alpha = \n\n A well @-@ known 1 @,@ 000 m peak . It is 3 @.@ 5 km wide . \n\n = = History = = \n\n"
        " Settled early . \n = Beta = \n\n Second article . \n",
        encoding="utf-8",
    )
    docs = list(read_documents([str(path)], "wikitext"))
    assert docs == [["A well-known 1,000 m peak .", "It is 3.5 km wide .", "Settled early ."], ["Second article ."]]
    assert list(iter_text([str(path)], "wikitext"))[0] == "A well-known 1,000 m peak ."


def test_binary_file_names_the_line(tmp_path):
    path = tmp_path / "b.txt"
    path.write_bytes(b"fine text\nmore\x00\x01binary\n")
    with pytest.raises(DataError, match=r"b.txt:2: NUL byte: this is a binary file"):
        list(read_documents([str(path)]))


def test_broken_utf8_names_line_and_column(tmp_path):
    path = tmp_path / "u.txt"
    path.write_bytes("ok\ncaf\u00e9 ok\n".encode("utf-8") + b"bad \xff here\n")
    with pytest.raises(DataError, match=r"u.txt:3: not valid UTF-8 \(byte 0xff at column 5\)"):
        list(read_documents([str(path)]))


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "e.txt"
    empty.write_text("\n  \n\n", encoding="utf-8")
    with pytest.raises(DataError, match="holds no text"):
        list(read_documents([str(empty)]))
    with pytest.raises(BertxError, match="text file not found"):
        list(read_documents([str(tmp_path / "missing.txt")]))


def test_labelled_files_give_their_texts_without_labels(tmp_path):
    tsv = tmp_path / "reviews.tsv"
    tsv.write_text("sentence\tlabel\nGreat pan. Works well.\t1\nBroke fast.\t0\n", encoding="utf-8")
    assert list(read_documents([str(tsv)])) == [["Great pan.", "Works well."], ["Broke fast."]]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"sentence1": "A cat sat.", "sentence2": "It slept.", "label": 1}\n', encoding="utf-8")
    assert list(read_documents([str(pairs)])) == [["A cat sat.", "It slept."]]
    no_text = tmp_path / "bad.tsv"
    no_text.write_text("id\tlabel\n1\t0\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.tsv:1: no text column"):
        list(read_documents([str(no_text)]))
