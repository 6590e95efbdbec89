"""The extractive-QA kind: an answer span of the context for each question.

Reads SQuAD JSON or JSONL (`bertx.data.squad`), builds overlapping windows with offsets
(`bertx.data.qa_features`), puts an HF `*ForQuestionAnswering` head on the encoder, decodes the best
span over all windows (`bertx.tasks.span_decoding`) and scores with SQuAD exact match and F1.
"""

from __future__ import annotations

from typing import Optional

import torch

from bertx.data.qa_features import qa_features
from bertx.data.squad import read_qa
from bertx.errors import BertxError
from bertx.models.batched_outputs import token_outputs
from bertx.metrics.squad import squad_metrics
from bertx.models.heads import load_with_new_head
from bertx.tasks.span_decoding import best_answers
from bertx.data.task_spec import EvalSet, TaskSpec, TrainData


def doc_stride(data) -> int:
    """Tokens shared by consecutive windows: `data.doc_stride`, else 128 (or less, to fit the window)."""
    room = data.max_length - data.max_query_length - 3  # context tokens in a window: [CLS] q [SEP] c [SEP]
    if room < 8:
        raise BertxError(
            f"data.max_length {data.max_length} leaves no room for the context after a question "
            f"of up to data.max_query_length={data.max_query_length} tokens"
        )
    stride = data.doc_stride if data.doc_stride is not None else min(128, room // 2)
    if stride >= room:
        raise BertxError(
            f"data.doc_stride {stride} must be smaller than the context room of a window ({room} tokens "
            f"= max_length {data.max_length} - max_query_length {data.max_query_length} - 3)"
        )
    return stride


class QaTask:
    label_dtype = torch.long

    def __init__(self, spec: TaskSpec):
        self.spec = spec

    def encode(self, examples, data, tokenizer, with_targets: bool):
        return qa_features(tokenizer, examples, data.max_length, doc_stride(data), data.max_query_length, with_targets)

    def load_train(self, path: str, data, tokenizer) -> TrainData:
        examples = read_qa(path, True, data.train_articles, data.max_train_examples)
        qa = self.encode(examples, data, tokenizer, with_targets=True)
        counts = {
            "questions": len(examples),
            "windowed": qa.windowed,
            "truncated_questions": qa.truncated_questions,
            "windows_without_answer": sum(span == (0, 0) for span in qa.features.spans),
        }
        return TrainData(qa.features, [], {}, counts)

    def load_eval(
        self, path: str, data, tokenizer, label2id: dict, run: dict, limit: Optional[int] = None, articles: Optional[str] = None
    ) -> EvalSet:
        examples = read_qa(path, True, articles, limit)
        qa = self.encode(examples, data, tokenizer, with_targets=False)
        gold = [[text for text, _ in ex.answers] for ex in examples]
        return EvalSet(qa.features, gold, extra=(qa, examples), counts={"windowed": qa.windowed, "truncated_questions": qa.truncated_questions})

    def build_model(self, path: str, labels: list[str], dropout: Optional[float]):
        return load_with_new_head(path, self.spec.auto_class, None, dropout)

    def prepare_model(self, model, train: TrainData, config, tokenizer, resume: bool) -> dict:
        return {"head_init": "random"}  # a start/end head has no class rows for a probe to fit

    def answers(
        self, model, qa, examples, pad_id: int, device=None, batch_size: int = 64, autocast_dtype=None, n_best: int = 20, max_answer_length: int = 30
    ) -> list[dict]:
        out = token_outputs(model, qa.features, pad_id, ("start_logits", "end_logits"), batch_size, device, autocast_dtype)
        return best_answers(qa, examples, out["start_logits"], out["end_logits"], n_best, max_answer_length)

    def evaluate(self, model, evalset: EvalSet, pad_id: int, data, device=None, batch_size: int = 64, autocast_dtype=None) -> dict:
        return self.scorer(model, evalset, pad_id, data, device, batch_size, autocast_dtype)(None)

    def scorer(self, model, evalset: EvalSet, pad_id: int, data, device=None, batch_size: int = 64, autocast_dtype=None):
        """Answers decoded once; a function of question indices -> EM / F1 (None: all questions)."""
        qa, examples = evalset.extra
        found = self.answers(model, qa, examples, pad_id, device, batch_size, autocast_dtype, data.n_best, data.max_answer_length)
        answers, gold = [a["answer"] for a in found], list(evalset.gold)
        return lambda idx=None: squad_metrics(answers if idx is None else [answers[i] for i in idx], gold if idx is None else [gold[i] for i in idx])
