"""QA examples -> features: question + a window of the context, with offsets back into the context.

A context longer than the window is cut into several features that overlap by `doc_stride` tokens
(the tokenizer's `stride`). Questions longer than `max_query_length` tokens are cut (and counted).
Each feature keeps, for every context token, its character span in the original context, so a
predicted token span maps back to the exact characters of the context.

Training targets: the answer's first and last token in the feature; a feature whose window does not
contain the whole answer points both at [CLS] (position 0), which teaches the model to give low
scores to windows without the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from bertx.data.features import Features
from bertx.data.squad import QaExample


@dataclass
class QaFeatures:
    features: Features  # one entry per window
    example: list[int]  # feature -> example index
    offsets: list[list[Optional[tuple[int, int]]]]  # feature -> per token: (char start, end) in the context, or None
    truncated_questions: int
    windowed: int  # examples that needed more than one window


def qa_features(
    tokenizer, examples: Sequence[QaExample], max_length: int, doc_stride: int, max_query_length: int, with_targets: bool, chunk: int = 1024
) -> QaFeatures:
    """Tokenise (question, context) pairs into windows.

    Args:
        tokenizer: a HF fast tokenizer.
        examples: the questions with their contexts (and answers when `with_targets`).
        max_length: tokens per feature, special tokens included.
        doc_stride: tokens shared by consecutive windows of one context.
        max_query_length: longest question in tokens; longer ones are cut.
        with_targets: set answer start/end positions (training).
    """
    questions, truncated = _cut_questions(tokenizer, [ex.question for ex in examples], max_query_length)
    input_ids, type_ids, spans, example_of, offsets = [], [], [], [], []
    windows_per_example = [0] * len(examples)
    for begin in range(0, len(examples), chunk):
        part = examples[begin : begin + chunk]
        enc = tokenizer(
            questions[begin : begin + len(part)],
            [ex.context for ex in part],
            truncation="only_second",
            max_length=max_length,
            stride=doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            verbose=False,
        )
        for f, local in enumerate(enc["overflow_to_sample_mapping"]):
            index = begin + local
            sequence_ids = enc.sequence_ids(f)
            spans_f = [tuple(span) if sid == 1 else None for span, sid in zip(enc["offset_mapping"][f], sequence_ids)]
            input_ids.append(enc["input_ids"][f])
            type_ids.append(enc["token_type_ids"][f] if "token_type_ids" in enc else [0] * len(enc["input_ids"][f]))
            offsets.append(spans_f)
            example_of.append(index)
            windows_per_example[index] += 1
            if with_targets:
                spans.append(answer_tokens(spans_f, examples[index].answers[0]))
    features = Features(input_ids, type_ids, lengths=[len(x) for x in input_ids], spans=spans if with_targets else None)
    return QaFeatures(features, example_of, offsets, truncated, sum(n > 1 for n in windows_per_example))


def answer_tokens(offsets: list[Optional[tuple[int, int]]], answer: tuple[str, int]) -> tuple[int, int]:
    """First and last token of the answer within a feature, or (0, 0) if the window misses any of it."""
    text, start = answer
    end = start + len(text)
    context = [k for k, span in enumerate(offsets) if span is not None]
    if not context or offsets[context[0]][0] > start or offsets[context[-1]][1] < end:
        return 0, 0
    first = next(k for k in context if offsets[k][1] > start)
    last = next(k for k in reversed(context) if offsets[k][0] < end)
    return first, last


def _cut_questions(tokenizer, questions: list[str], max_query_length: int) -> tuple[list[str], int]:
    """Cut questions to `max_query_length` tokens at a token boundary of the original string."""
    enc = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    out, cut = [], 0
    for question, offsets in zip(questions, enc["offset_mapping"]):
        if len(offsets) > max_query_length:
            question = question[: offsets[max_query_length - 1][1]]
            cut += 1
        out.append(question)
    return out, cut
