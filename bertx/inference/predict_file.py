"""Predict a whole file and write the results, for every task kind.

- Sequence tasks: TSV/CSV/JSONL with the training columns, or `.txt` with one text per line -> JSONL
  with the predicted label and every label's probability.
- NER: raw text (`.txt`, one text per line, or JSONL with `text`) -> JSONL of entity spans with
  character offsets; CoNLL columns (`.conll`/`.bio`/`.iob`, or `--format conll`) -> the same file
  with a predicted-tag column appended to every word line; JSONL with `tokens` -> their tags.
- QA: SQuAD JSON or JSONL with `question` and `context` -> JSONL with the answer, its character
  start and end in the context, and its score.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from bertx.data.conll import conll_fields, is_docstart
from bertx.data.examples import read_examples
from bertx.data.readers import file_format, read_lines, read_rows, read_text_lines
from bertx.data.squad import read_qa
from bertx.errors import BertxError, DataError
from bertx.runfolder import check_output_file, output_file
from bertx.inference.entities import EntityPredictor
from bertx.inference.records import predictor_for
from bertx.inference.loading import load_trained
from bertx.inference.predictor import Predictor

FORMATS = ("auto", "text", "conll", "jsonl")
# Predictions are made in chunks of this many lines (CSV: records), the shards of `--engine ray`
# (scale/corpus.py cuts them the same way). A text's batch-mates then do not depend on the engine, which
# matters for int8 exports: dynamic quantisation scales each batch by its largest activation, so one text
# can get another probability in another batch (up to 0.29 on SST-2, 1.3% of labels, when a 50,000-line
# file was sorted whole).
CHUNK_LINES = 10_000


def chunk_keys(fmt: str, lines: list[int]) -> list[int]:
    """Which chunk each example falls in, from its line (text, JSONL: from line 1; TSV: after the header on
    line 1; CSV: by record, as a quoted record may span lines)."""
    if fmt == "csv":
        return [i // CHUNK_LINES for i in range(len(lines))]
    first = 2 if fmt == "tsv" else 1
    return [(line - first) // CHUNK_LINES for line in lines]


def in_chunks(keys: list[int], predict) -> list:
    """`predict(indices)` for each run of examples with the same chunk key, the results in input order."""
    results: list = []
    start = 0
    while start < len(keys):
        end = start
        while end < len(keys) and keys[end] == keys[start]:
            end += 1
        results += predict(list(range(start, end)))
        start = end
    return results


@dataclass(frozen=True)
class Destination:
    """Where predictions go (None: stdout) and what the command reads, which they may never replace."""

    path: Optional[str]
    reads: tuple = ()


@contextmanager
def _sink(out: Destination):
    """stdout, or the output file through the one writer (`runfolder.output_file`): complete or not at
    all, never over the model or the input, a device or FIFO written as a stream."""
    if not out.path:
        yield sys.stdout
        return
    with output_file(out.path, reads=out.reads) as handle:
        yield handle


def _write_jsonl(records: Iterable[dict], out: Destination) -> int:
    count = 0
    with _sink(out) as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def predict_file(
    model_dir: str, input_path: str, output_path: Optional[str] = None, batch_size: int = 128, bf16: bool = False, input_format: str = "auto"
) -> int:
    """Predict every example of `input_path` and write to `output_path` (stdout if None).

    Returns:
        The number of predictions written (texts, sentences or questions).
    """
    if input_format not in FORMATS:
        raise BertxError(f"--format {input_format!r}: choose one of {', '.join(FORMATS)}")
    out = Destination(output_path, (model_dir, input_path))
    if output_path:  # before any prediction is computed
        check_output_file(output_path, out.reads)
    predictor = predictor_for(load_trained(model_dir, bf16=bf16))
    if predictor.kind == "ner":
        return _predict_entities(predictor.inner, input_path, out, batch_size, input_format)
    if predictor.kind == "qa":
        examples = read_qa(input_path, require_answers=False)
        answers = predictor.inner.predict_examples(examples, batch_size)
        return _write_jsonl(({"id": ex.id, "question": ex.question, **answer} for ex, answer in zip(examples, answers)), out)
    return _predict_sequences(predictor.inner, input_path, out, batch_size)


def _predict_sequences(predictor: Predictor, input_path: str, out: Destination, batch_size: int) -> int:
    """Sequence tasks: a `.txt` file holds one text per line; other formats use the columns the model
    was trained on, and a label column, if present, is ignored."""
    pairs = None
    if Path(input_path).suffix.lower() == ".txt":
        texts = read_text_lines(input_path)
        keys = chunk_keys("text", list(range(1, len(texts) + 1)))
    else:
        options = {**predictor.reading_options(), "label_column": None}
        examples, columns = read_examples(input_path, predictor.task, **options, require_label=False)
        texts = [ex.text for ex in examples]
        pairs = [ex.text_pair for ex in examples] if columns.text_pair else None
        keys = chunk_keys(file_format(input_path), [ex.line for ex in examples])
    results = in_chunks(
        keys, lambda rows: predictor.predict([texts[i] for i in rows], [pairs[i] for i in rows] if pairs else None, batch_size=batch_size)
    )

    def records():
        for i, (text, result) in enumerate(zip(texts, results)):
            yield {"text": text, **({"text_pair": pairs[i]} if pairs else {}), **result}

    return _write_jsonl(records(), out)


def _predict_entities(predictor: EntityPredictor, input_path: str, out: Destination, batch_size: int, input_format: str) -> int:
    if input_format == "auto":
        if Path(input_path).suffix.lower() in (".conll", ".bio", ".iob"):
            input_format = "conll"
        else:
            input_format = "jsonl" if file_format(input_path) == "jsonl" else "text"
    if input_format == "conll":
        return _tag_conll(predictor, input_path, out, batch_size)
    if input_format == "text":
        texts = read_text_lines(input_path)
        found = in_chunks(chunk_keys("text", list(range(1, len(texts) + 1))), lambda rows: predictor.predict([texts[i] for i in rows], batch_size))
        return _write_jsonl(({"text": t, "entities": e} for t, e in zip(texts, found)), out)
    _, rows = read_rows(input_path)
    keys = chunk_keys("jsonl", [row.line for row in rows])
    if all("tokens" in row.fields for row in rows):
        sentences = []
        for row in rows:
            tokens = row.fields["tokens"]
            if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) and t.strip() for t in tokens):
                raise DataError(input_path, row.line, "'tokens' must be a non-empty list of non-empty strings")
            sentences.append(tokens)
        tagged = in_chunks(keys, lambda chunk: predictor.tag([sentences[i] for i in chunk], batch_size))
        return _write_jsonl(({"tokens": s, "tags": tags} for s, (tags, _) in zip(sentences, tagged)), out)
    texts = []
    for row in rows:
        text = row.fields.get("text")
        if not isinstance(text, str) or not text.strip():
            raise DataError(input_path, row.line, "needs a non-empty 'text' (or a 'tokens' list)")
        texts.append(text)
    found = in_chunks(keys, lambda chunk: predictor.predict([texts[i] for i in chunk], batch_size))
    return _write_jsonl(({"text": t, "entities": e} for t, e in zip(texts, found)), out)


def _tag_conll(predictor: EntityPredictor, input_path: str, out: Destination, batch_size: int) -> int:
    """Append a predicted-tag column to every word line; other lines are written unchanged."""
    lines = read_lines(Path(input_path))
    sentences: list[list[int]] = []  # line indices of each sentence's words
    current: list[int] = []
    for index, line in enumerate(lines + [""]):
        fields = conll_fields(line)
        if fields and not is_docstart(fields[0]):
            current.append(index)
        elif current:
            sentences.append(current)
            current = []
    if not sentences:
        raise DataError(input_path, None, "no sentences found")
    tagged = predictor.tag([[conll_fields(lines[i])[0] for i in s] for s in sentences], batch_size)
    tag_of = {i: tag for s, (tags, _) in zip(sentences, tagged) for i, tag in zip(s, tags)}
    with _sink(out) as handle:
        for index, line in enumerate(lines):
            if index in tag_of:
                separator = "\t" if "\t" in line else " "
                line = f"{line.rstrip()}{separator}{tag_of[index]}"
            handle.write(line + "\n")
    return len(sentences)
