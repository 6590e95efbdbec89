"""Tagged-word readers for token classification: CoNLL-style columns and JSONL.

CoNLL: one word per line, the word in the first column and its tag in the last (POS or chunk
columns in between are allowed), a blank line between sentences, `-DOCSTART-` lines skipped.
JSONL: one object per line with `tokens` (or `words`) and `tags` (or `ner_tags`) lists of equal length.

Each word keeps the line it came from, so a bad tag is reported at its own line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from bertx.data.readers import file_format, read_lines, read_rows
from bertx.errors import DataError

WORD_KEYS = ("tokens", "words")
TAG_KEYS = ("tags", "ner_tags", "labels")


@dataclass
class TaggedSentence:
    words: list[str]
    tags: Optional[list[str]]  # None when the file has no tags (prediction input)
    lines: list[int]  # line of each word (JSONL: the object's line for all of them)


def read_tagged(path: str | Path, require_tags: bool = True, limit: Optional[int] = None) -> list[TaggedSentence]:
    """Read a CoNLL-style or JSONL file of tagged sentences.

    Args:
        path: `.jsonl`/`.json` for JSONL, anything else is read as CoNLL columns.
        require_tags: a word without a tag is an error (True), or tags are not read at all (False).
        limit: read only the first N sentences.
    """
    if file_format(path) == "jsonl":
        sentences = _read_jsonl(path, require_tags)
    else:
        sentences = _read_conll(path, require_tags)
    if not sentences:
        raise DataError(path, None, "no sentences found")
    return sentences[:limit] if limit else sentences


def conll_fields(line: str) -> list[str]:
    """A CoNLL line's columns: separated by spaces and tabs only (`str.split()` would also cut a word at
    a no-break space, U+2028 or a control character that belongs to the word)."""
    return [field for field in re.split(r"[ \t]+", line.strip(" \t\r")) if field]


def is_docstart(line: str) -> bool:
    return line.startswith("-DOCSTART-")


def _read_conll(path, require_tags: bool) -> list[TaggedSentence]:
    sentences: list[TaggedSentence] = []
    words: list[str] = []
    tags: list[str] = []
    lines: list[int] = []

    def close() -> None:
        if words:
            sentences.append(TaggedSentence(list(words), list(tags) if require_tags else None, list(lines)))
            words.clear(), tags.clear(), lines.clear()

    width = None  # columns of the file's first word line: every word line must have as many
    for number, line in enumerate(read_lines(Path(path)), start=1):
        fields = conll_fields(line)
        if not fields:
            close()
            continue
        if is_docstart(fields[0]):
            close()
            continue
        if require_tags:
            if len(fields) < 2:
                raise DataError(path, number, f"word {fields[0]!r} has no tag (expected `word ... tag` columns)")
            width = width or len(fields)
            if len(fields) != width:
                # e.g. a CoNLL-2003 line (word POS chunk NER) that lost its NER tag would otherwise be read
                # with its chunk tag (B-NP) as an entity type
                raise DataError(path, number, f"{len(fields)} columns, but the file's word lines have {width}; is a tag missing?")
            tags.append(fields[-1])
        words.append(fields[0])
        lines.append(number)
    close()
    return sentences


def _read_jsonl(path, require_tags: bool) -> list[TaggedSentence]:
    _, rows = read_rows(path)
    sentences = []
    for row in rows:
        words = _list_field(path, row.line, row.fields, WORD_KEYS, required=True)
        tags = _list_field(path, row.line, row.fields, TAG_KEYS, required=require_tags) if require_tags else None
        if not words:
            raise DataError(path, row.line, "empty sentence (no tokens)")
        for word in words:
            if not word.strip() or any(c.isspace() for c in word):
                raise DataError(path, row.line, f"token {word!r} is empty or contains whitespace")
        if tags is not None and len(tags) != len(words):
            raise DataError(path, row.line, f"{len(words)} tokens but {len(tags)} tags")
        sentences.append(TaggedSentence(words, tags, [row.line] * len(words)))
    return sentences


def _list_field(path, line: int, fields: dict, keys: tuple[str, ...], required: bool) -> Optional[list[str]]:
    key = next((k for k in keys if k in fields), None)
    if key is None:
        if required:
            raise DataError(path, line, f"missing field (one of {', '.join(keys)})")
        return None
    value = fields[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError(path, line, f"{key!r} must be a list of strings")
    return value
