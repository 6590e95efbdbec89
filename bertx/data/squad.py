"""Extractive-QA readers: SQuAD v1.1 JSON and JSONL of (question, context, answers).

SQuAD JSON: `{"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question", "answers":
[{"text", "answer_start"}]}]}]}]}`. JSONL: one object per line with `question`, `context` and
`answers`, either `{"text": [...], "answer_start": [...]}` (the HF datasets layout) or a list of
`{"text", "answer_start"}`; `id` is optional.

Every answer is checked against its context: the text must sit exactly at `answer_start`. Questions
without an answer (SQuAD 2.0's `is_impossible`) are rejected with a clear error: bertx's QA head
always extracts a span, and silently training it on "no answer" examples would be wrong.
Errors name the question id (JSON) or the line (JSONL).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from bertx.data.readers import file_format, read_rows, read_text, surrogate_problem
from bertx.errors import DataError


@dataclass
class QaExample:
    id: str
    question: str
    context: str
    answers: list[tuple[str, int]] = field(default_factory=list)  # (text, character start)
    title: str = ""
    where: int | str = ""  # line or "question ID", for error messages


def parse_slice(spec: Optional[str], what: str) -> slice:
    """ "START:END" (Python slice syntax, either side optional) -> slice; None -> everything."""
    if not spec:
        return slice(None)
    try:
        parts = [int(p) if p.strip() else None for p in spec.split(":")]
        if len(parts) != 2:
            raise ValueError
    except ValueError:
        raise DataError(what, None, f"{spec!r} is not a START:END range of articles") from None
    return slice(*parts)


def read_qa(path: str | Path, require_answers: bool = True, articles: Optional[str] = None, limit: Optional[int] = None) -> list[QaExample]:
    """Read QA examples.

    Args:
        path: SQuAD JSON (`.json` with a top-level `data` list) or JSONL.
        require_answers: training and evaluation need answers; prediction does not.
        articles: "START:END", the SQuAD articles to read (say "0:400" for training and "400:" for a
            held-out set from other articles); JSON only.
        limit: read only the first N questions.
    """
    path = Path(path)
    squad = None
    if path.suffix.lower() == ".json":
        text = read_text(path)
        try:
            squad = json.loads(text)
        except json.JSONDecodeError as err:
            if err.msg != "Extra data":  # "Extra data": several objects, one per line, i.e. JSONL
                raise DataError(path, err.lineno, f"not valid JSON: {err.msg}") from None
    if squad is not None:
        problem = surrogate_problem(text, squad)
        if problem:
            raise DataError(path, None, problem)
        examples = _read_squad(path, squad, require_answers, parse_slice(articles, str(path)))
    else:
        if articles:
            raise DataError(path, None, "data articles ranges apply to SQuAD JSON files only")
        examples = _read_jsonl(path, require_answers)
    if not examples:
        raise DataError(path, None, "no questions found")
    return examples[:limit] if limit else examples


def _read_squad(path: Path, doc, require_answers: bool, articles: slice) -> list[QaExample]:
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise DataError(path, None, 'not SQuAD JSON: no top-level "data" list')
    examples = []
    for a, article in enumerate(doc["data"][articles]):
        title = article.get("title", f"article {a}") if isinstance(article, dict) else ""
        for p, paragraph in enumerate(_get(article, "paragraphs", list, path, f"article {title!r}")):
            where = f"article {title!r}, paragraph {p}"
            context = _get(paragraph, "context", str, path, where)
            for q, qa in enumerate(_get(paragraph, "qas", list, path, where)):
                qid = qa.get("id", f"{title}/{p}/{q}") if isinstance(qa, dict) else f"{title}/{p}/{q}"
                place = f"question {qid}"
                if qa.get("is_impossible"):
                    raise DataError(
                        path, place, "unanswerable question (SQuAD 2.0) is not supported: bertx's QA head always extracts a span; drop such questions"
                    )
                raw = _get(qa, "answers", list, path, place) if require_answers else qa.get("answers") or []
                answers = [(_get(x, "text", str, path, place), _get(x, "answer_start", int, path, place)) for x in raw]
                examples.append(_check(path, place, str(qid), _get(qa, "question", str, path, place), context, answers, require_answers, title))
    return examples


def _read_jsonl(path: Path, require_answers: bool) -> list[QaExample]:
    if file_format(path) != "jsonl":
        raise DataError(path, None, "QA data must be SQuAD JSON (.json) or JSONL (.jsonl)")
    _, rows = read_rows(path)
    examples = []
    for row in rows:
        fields = row.fields
        raw = fields.get("answers")
        if raw is None and require_answers:
            raise DataError(path, row.line, "missing 'answers'")
        answers = []
        if isinstance(raw, dict):  # {"text": [...], "answer_start": [...]}
            texts, starts = raw.get("text"), raw.get("answer_start")
            if not isinstance(texts, list) or not isinstance(starts, list) or len(texts) != len(starts):
                raise DataError(path, row.line, "'answers' needs equal-length 'text' and 'answer_start' lists")
            raw = [{"text": t, "answer_start": s} for t, s in zip(texts, starts)]
        for x in raw or []:
            answers.append((_get(x, "text", str, path, row.line), _get(x, "answer_start", int, path, row.line)))
        examples.append(
            _check(
                path,
                row.line,
                str(fields.get("id", row.line)),
                _get(fields, "question", str, path, row.line),
                _get(fields, "context", str, path, row.line),
                answers,
                require_answers,
                "",
            )
        )
    return examples


def _get(obj, key: str, kind: type, path, where):
    if not isinstance(obj, dict) or key not in obj:
        raise DataError(path, where, f"missing {key!r}")
    value = obj[key]
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise DataError(path, where, f"{key!r} must be {kind.__name__}, got {type(value).__name__}")
    return value


def _check(path, where, qid: str, question: str, context: str, answers, require_answers: bool, title: str) -> QaExample:
    if not context.strip():
        raise DataError(path, where, "empty context")
    if not question.strip():
        raise DataError(path, where, "empty question")
    if require_answers and not answers:
        raise DataError(path, where, "no answer (unanswerable SQuAD 2.0 questions are not supported)")
    for text, start in answers:
        if not text.strip():
            raise DataError(path, where, "empty answer text")
        if context[start : start + len(text)] != text:
            found = context[start : start + len(text)]
            raise DataError(path, where, f"answer {text!r} is not at answer_start {start} of the context (the context has {found!r} there)")
    return QaExample(qid, question, context, list(answers), title, where)
