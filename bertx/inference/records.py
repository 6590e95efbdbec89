"""One predictor for any trained folder: the records `bertx predict` writes, whatever the task kind.

Inputs are pairs in one form for every kind: (text, text pair or None) for sequence tasks, (text, None) for
NER, (question, context) for QA. `bertx predict`, the server, the Ray corpus job, the latency probe and the
`finetune --predict` step all take their records from here, so a record means the same wherever it is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from bertx.inference.answers import AnswerPredictor
from bertx.inference.entities import EntityPredictor
from bertx.inference.loading import TrainedModel
from bertx.inference.predictor import Predictor


@dataclass
class RecordPredictor:
    """`records(inputs)`: one dict per input, in input order (`text`/`text_pair` or `question`, then the
    prediction). `inner` is the kind's own predictor, for callers that need more (words already split,
    QA examples with ids)."""

    trained: TrainedModel
    inner: Predictor | EntityPredictor | AnswerPredictor

    @property
    def kind(self) -> str:
        return self.trained.task.name

    def records(self, inputs: Sequence[tuple], batch_size: int | None = None) -> list[dict]:
        sized = {} if batch_size is None else {"batch_size": batch_size}
        if self.kind == "qa":
            answers = self.inner.predict([q for q, _ in inputs], [c for _, c in inputs], **sized)
            return [{"question": q, **answer} for (q, _), answer in zip(inputs, answers)]
        texts = [t for t, _ in inputs]
        if self.kind == "ner":
            return [{"text": t, "entities": e} for t, e in zip(texts, self.inner.predict(texts, **sized))]
        with_pairs = any(p is not None for _, p in inputs)
        pairs = [p or "" for _, p in inputs] if with_pairs else None
        results = self.inner.predict(texts, pairs, **sized)
        return [{"text": t, **({"text_pair": p} if p is not None else {}), **r} for (t, p), r in zip(inputs, results)]


def predictor_for(trained: TrainedModel) -> RecordPredictor:
    """The predictor of a loaded folder's task kind, wrapped to write records."""
    if trained.task.name == "qa":
        return RecordPredictor(trained, AnswerPredictor(trained))
    if trained.task.name == "ner":
        return RecordPredictor(trained, EntityPredictor(trained))
    return RecordPredictor(trained, Predictor.from_trained(trained))
