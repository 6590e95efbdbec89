"""AnswerPredictor: a trained QA folder -> the answer span of each (question, context)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from bertx.data.squad import QaExample
from bertx.errors import BertxError
from bertx.inference.loading import TrainedModel, load_trained


@dataclass
class AnswerPredictor:
    trained: TrainedModel

    @classmethod
    def load(cls, model_dir: str | Path, device: str | None = None, bf16: bool = False) -> "AnswerPredictor":
        trained = load_trained(model_dir, device, bf16=bf16)
        if trained.task.name != "qa":
            raise BertxError(f"{model_dir}: a {trained.task.name} model, not a question-answering (qa) one")
        return cls(trained)

    def predict_examples(self, examples: Sequence[QaExample], batch_size: int = 64) -> list[dict]:
        t = self.trained
        if not examples:
            return []
        qa = t.kind.encode(list(examples), t.data, t.tokenizer, with_targets=False)
        return t.kind.answers(
            t.model,
            qa,
            list(examples),
            t.pad_id,
            batch_size=batch_size,
            autocast_dtype=t.autocast_dtype,
            n_best=t.data.n_best,
            max_answer_length=t.data.max_answer_length,
        )

    def predict(self, questions: Sequence[str], contexts: Sequence[str], batch_size: int = 64) -> list[dict]:
        """One answer per question: `answer`, `start` and `end` (characters in its context), `score`."""
        if len(questions) != len(contexts):
            raise BertxError(f"{len(questions)} questions but {len(contexts)} contexts")
        examples = []
        for i, (question, context) in enumerate(zip(questions, contexts)):
            if not question.strip() or not context.strip():
                raise BertxError(f"question {i + 1}: empty {'question' if not question.strip() else 'context'}")
            examples.append(QaExample(str(i), question, context))
        return self.predict_examples(examples, batch_size)
