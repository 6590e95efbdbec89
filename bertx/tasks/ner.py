"""The token-classification (NER) kind: a BIO tag per word.

Reads CoNLL columns or JSONL (`bertx.data.conll`), checks and normalises the tag scheme
(`bertx.tasks.bio`), aligns tags to word pieces in overlapping windows (`bertx.data.word_windows`),
puts an HF `*ForTokenClassification` head on the encoder, decodes valid BIO per sentence and scores
entities with seqeval (`bertx.metrics.tagging`).
"""

from __future__ import annotations

from typing import Optional

import torch

from bertx.data.conll import read_tagged
from bertx.data.word_windows import merge_word_logits, word_features
from bertx.errors import DataError
from bertx.models.batched_outputs import token_outputs
from bertx.metrics.tagging import micro_from_counts, sentence_counts, tagging_metrics
from bertx.models.heads import load_with_new_head
from bertx.tasks.bio import build_tag_space, decode_tags, encode_tags, normalise_tags
from bertx.data.task_spec import EvalSet, TaskSpec, TrainData
from bertx.models.head_init import token_probe_init_head


def window_overlap(data) -> int:
    """Sub-tokens shared by consecutive windows of a long sentence: `data.doc_stride`, else a quarter window."""
    return data.doc_stride or max(1, data.max_length // 4)


class NerTask:
    label_dtype = torch.long

    def __init__(self, spec: TaskSpec):
        self.spec = spec

    def read(self, path: str, data, limit: Optional[int] = None):
        sentences = read_tagged(path, limit=limit)
        repaired = normalise_tags(sentences, path, data.tag_scheme, data.invalid_tags)
        return sentences, repaired

    def load_train(self, path: str, data, tokenizer) -> TrainData:
        sentences, repaired = self.read(path, data, data.max_train_examples)
        labels = build_tag_space(sentences)
        if len(labels) < 2:
            raise DataError(path, None, "no entity tags in the training file (every tag is O)")
        label2id = {name: i for i, name in enumerate(labels)}
        tag_ids = [encode_tags(s, label2id, path) for s in sentences]
        words = word_features(
            tokenizer, [s.words for s in sentences], data.max_length, window_overlap(data), tag_ids, labels, data.label_all_subtokens
        )
        counts = {"sentences": len(sentences), "windowed": words.windowed, "repaired_tags": repaired}
        return TrainData(words.features, labels, {}, counts, words)

    def load_eval(
        self, path: str, data, tokenizer, label2id: dict, run: dict, limit: Optional[int] = None, articles: Optional[str] = None
    ) -> EvalSet:
        sentences, repaired = self.read(path, data, limit)
        tag_ids = [encode_tags(s, label2id, path) for s in sentences]
        words = word_features(tokenizer, [s.words for s in sentences], data.max_length, window_overlap(data), tag_ids)
        return EvalSet(words.features, [s.tags for s in sentences], extra=words, counts={"windowed": words.windowed, "repaired_tags": repaired})

    def build_model(self, path: str, labels: list[str], dropout: Optional[float]):
        return load_with_new_head(path, self.spec.auto_class, labels, dropout)

    def prepare_model(self, model, train: TrainData, config, tokenizer, resume: bool) -> dict:
        if config.train.head_init == "probe" and not resume:
            return token_probe_init_head(model, train.features, tokenizer.pad_token_id, config.train.probe_examples, config.train.seed)
        return {"head_init": "random"}

    def word_logits(self, model, words, pad_id: int, device=None, batch_size: int = 64, autocast_dtype=None) -> list:
        """Per-sentence (W, C) logits, each word from the window that owns it."""
        out = token_outputs(model, words.features, pad_id, ("logits",), batch_size, device, autocast_dtype)
        return merge_word_logits(words, out["logits"])

    def evaluate(self, model, evalset: EvalSet, pad_id: int, data, device=None, batch_size: int = 64, autocast_dtype=None) -> dict:
        return self.scorer(model, evalset, pad_id, data, device, batch_size, autocast_dtype)(None)

    def scorer(self, model, evalset: EvalSet, pad_id: int, data, device=None, batch_size: int = 64, autocast_dtype=None):
        """Tags decoded once; a function of sentence indices -> entity metrics (None: all sentences)."""
        labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        logits = self.word_logits(model, evalset.extra, pad_id, device, batch_size, autocast_dtype)
        pred = [decode_tags(x, labels, data.tag_decoding) for x in logits]
        counts = sentence_counts(evalset.gold, pred)  # (S, 5): seqeval once, then sums per resample
        return lambda idx=None: tagging_metrics(evalset.gold, pred) if idx is None else micro_from_counts(counts[idx])
