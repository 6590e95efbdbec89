"""QA decoding: start/end logits of every window of a context -> the best answer span in characters.

For each window, the `n_best` highest start and end logits among context tokens are paired; a pair
is a candidate when end >= start and it spans at most `max_answer_length` tokens. Its score is the sum
of the two logits, comparable across the windows of one context (the model was trained to score
windows without the answer low, at [CLS]). The best candidate's token span maps back, through the
offsets, to exact characters of the original context; `score` is its softmax probability among all
candidates of the question.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from bertx.data.qa_features import QaFeatures
from bertx.data.squad import QaExample


def best_answers(
    qa: QaFeatures,
    examples: list[QaExample],
    start_logits: list[np.ndarray],
    end_logits: list[np.ndarray],
    n_best: int = 20,
    max_answer_length: int = 30,
) -> list[dict]:
    """One answer per example: `answer` (text), `start`, `end` (characters in the context) and `score`."""
    by_example = defaultdict(list)
    for f, index in enumerate(qa.example):
        by_example[index].append(f)
    results = []
    for index, example in enumerate(examples):
        candidates: dict[tuple[int, int], float] = {}  # (char start, char end) -> best score
        for f in by_example[index]:
            offsets = qa.offsets[f]
            context = np.array([span is not None for span in offsets])
            starts = np.where(context, start_logits[f], -np.inf)  # (T,)
            ends = np.where(context, end_logits[f], -np.inf)  # (T,)
            k = min(n_best, int(context.sum()))
            if k == 0:
                continue
            top_starts = np.argpartition(-starts, k - 1)[:k]
            top_ends = np.argpartition(-ends, k - 1)[:k]
            for s in top_starts:
                for e in top_ends:
                    if e < s or e - s + 1 > max_answer_length:
                        continue
                    span, score = (offsets[s][0], offsets[e][1]), float(starts[s] + ends[e])
                    candidates[span] = max(score, candidates.get(span, -np.inf))  # windows overlap
        if not candidates:
            results.append({"answer": "", "start": 0, "end": 0, "score": 0.0})
            continue
        spans = list(candidates)
        scores = np.array([candidates[span] for span in spans])
        probs = np.exp(scores - scores.max())
        best = int(scores.argmax())
        start, end = spans[best]
        results.append({"answer": example.context[start:end], "start": int(start), "end": int(end), "score": float(probs[best] / probs.sum())})
    return results
