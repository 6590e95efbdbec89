"""Plain-text corpora for pretraining: files -> documents -> sentences, checked line by line.

A document is the unit that next-sentence / sentence-order prediction draws pairs from:
- `blank`: documents are separated by blank lines (BookCorpus / BERT's own layout);
- `line`: every non-empty line is a document (one review, one abstract per line);
- `wikitext`: a ` = Title = ` line starts a document; section headings are dropped and WikiText's
  tokenisation marks (` @-@ `, ` @,@ `, ` @.@ `) are undone, so the text looks like raw Wikipedia.

Inside a document, text is split into sentences by a light rule (end punctuation, a space, then an
upper-case letter, digit or quote). It errs on the side of fewer splits; a sentence longer than the
model's window is cut later, and counted.

Bad input stops with the file and line: a file that is not UTF-8 text (binary, broken encoding), a
file with no text at all, a file that does not exist.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, Literal

from bertx.errors import BertxError, DataError

DocumentMode = Literal["blank", "line", "wikitext"]

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
WIKI_TITLE = re.compile(r"^ ?= [^=].* = ?$")  # ` = Title = ` (one '=' each side)
WIKI_HEADING = re.compile(r"^ ?(= ){2,}.*( =){2,} ?$")  # ` = = Section = = `
WIKI_MARKS = ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."))


def split_sentences(text: str) -> list[str]:
    return [s for s in (part.strip() for part in SENTENCE_END.split(text)) if s]


def read_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a UTF-8 text file, streamed; binary or broken files stop at the bad line."""
    path = Path(path)
    if not path.is_file():
        raise BertxError(f"{path}: text file not found")
    any_text = False
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if b"\x00" in raw:
                raise DataError(path, number, "NUL byte: this is a binary file, not text")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(path, number, f"not valid UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1})") from None
            line = line.rstrip("\r\n")
            any_text = any_text or bool(line.strip())
            yield number, line
    if not any_text:
        raise DataError(path, None, "the file holds no text (empty or only blank lines)")


LABELLED_SUFFIXES = (".tsv", ".csv", ".jsonl")


def labelled_file_documents(path: str) -> Iterator[list[str]]:
    """The texts of a labelled TSV/CSV/JSONL file, one document per row, labels dropped: a task's
    own files serve as unlabelled text (task- or domain-adaptive pretraining, auxiliary MLM)."""
    from bertx.data.examples import PAIR_COLUMNS, TEXT_COLUMNS
    from bertx.data.readers import read_rows

    header, rows = read_rows(path)
    text = next((c for c in TEXT_COLUMNS if c in header), None)
    if text is None:
        raise DataError(path, 1, f"no text column (looked for {', '.join(TEXT_COLUMNS)}); columns are: {', '.join(header)}")
    pair = next((c for c in PAIR_COLUMNS if c in header), None)
    for row in rows:
        texts = [str(row.fields.get(c) or "").strip() for c in (text, pair) if c]
        sentences = [s for t in texts for s in split_sentences(t)]
        if sentences:
            yield sentences


def read_documents(paths: list[str], mode: DocumentMode = "blank") -> Iterator[list[str]]:
    """Documents (lists of sentences) of all files, in order, streamed: memory holds one document.
    Labelled files (.tsv, .csv, .jsonl) give one document per row, from their text column(s)."""
    for path in paths:
        if Path(path).suffix.lower() in LABELLED_SUFFIXES:
            yield from labelled_file_documents(path)
            continue
        sentences: list[str] = []
        for _, line in read_lines(path):
            text = line.strip()
            if mode == "wikitext":
                if WIKI_TITLE.match(line):
                    if sentences:
                        yield sentences
                    sentences = []
                    continue
                if WIKI_HEADING.match(line) or not text:
                    continue
                for mark, plain in WIKI_MARKS:
                    text = text.replace(mark, plain)
                sentences.extend(split_sentences(text))
            elif mode == "line":
                if text:
                    yield split_sentences(text)
            else:  # blank-line separated
                if text:
                    sentences.extend(split_sentences(text))
                elif sentences:
                    yield sentences
                    sentences = []
        if sentences:
            yield sentences


def iter_text(paths: list[str], mode: DocumentMode = "blank") -> Iterator[str]:
    """The sentences of all files, one string at a time (tokenizer training reads this)."""
    for document in read_documents(paths, mode):
        yield from document
