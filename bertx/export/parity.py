"""Does an exported model predict what the PyTorch model predicts? Measured on a sample, per task kind.

    sequence tasks   the same label (classification), label set (multi-label), or a score within 1% of
                     the sample's range (regression)
    NER              the same tag for every word of a sentence (hence the same entities)
    QA               the same answer text

Plus the largest absolute difference of any output logit, and, when the sample has labels, the task
metrics of both models on it.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Optional

import numpy as np

from bertx.data.examples import Example, read_examples
from bertx.data.features import tokenize
from bertx.errors import BertxError
from bertx.inference.loading import TrainedModel
from bertx.models.batched_outputs import model_outputs, token_outputs


PAD_LOGIT = -1e4  # padding of per-window QA logits: a position no softmax gives weight to


def decisions_agree(label_kind: str, reference, candidate, lengths: list[int]) -> float:
    """Share of examples (tags: of tokens) on which two models' raw outputs decide the same: one label,
    one label set, a score within 1% of the reference's range, or (tags) the tag of every token."""
    if label_kind == "class":
        return float((reference.argmax(-1) == candidate.argmax(-1)).mean())
    if label_kind == "classes":
        return float(((reference > 0) == (candidate > 0)).all(-1).mean())
    if label_kind == "score":
        spread = max(float(reference.max() - reference.min()), 1e-6)
        return float((np.abs(reference - candidate)[:, 0] <= 0.01 * spread).mean())
    same = [int((r.argmax(-1) == c.argmax(-1)).sum()) for r, c in zip(reference["logits"], candidate["logits"])]
    return sum(same) / max(1, sum(lengths))


def sample_source(trained: TrainedModel, sample_file: Optional[str]) -> Optional[str]:
    """The labelled file to check on: the one given, else the run's dev file, else its training file."""
    if sample_file:
        if not Path(sample_file).is_file():
            raise BertxError(f"{sample_file}: sample file not found")
        return sample_file
    data = trained.run.get("data") or {}
    for key in ("dev", "train"):
        path = data.get(key)
        if isinstance(path, str) and Path(path).is_file():
            return path
    return None


def synthetic_words(tokenizer, n: int, seed: int = 0) -> list[list[str]]:
    """Sentences of whole-word vocabulary entries, for a folder whose data is not at hand."""
    special = set(tokenizer.all_special_tokens)
    words = [w for w in tokenizer.get_vocab() if w.isalpha() and w not in special and not w.startswith("##")]
    if not words:
        raise BertxError("no sample file and no whole words in the vocabulary to make a sample from; pass --sample FILE")
    rng = random.Random(seed)
    return [[rng.choice(words) for _ in range(rng.randint(4, 24))] for _ in range(n)]


def parity(reference: TrainedModel, candidate: TrainedModel, sample_file: Optional[str], size: int) -> dict:
    """Compare two loaded models of one task on up to `size` examples."""
    source = sample_source(reference, sample_file)
    name = reference.task.name
    if name == "ner":
        found = _ner(reference, candidate, source, size)
    elif name == "qa":
        found = _qa(reference, candidate, source, size)
    else:
        found = _sequence(reference, candidate, source, size)
    if source:
        found["metrics"] = _metrics(reference, candidate, source, size)
    found["sample"]["source"] = source or "synthetic sentences from the vocabulary"
    return found


def _metrics(reference: TrainedModel, candidate: TrainedModel, source: str, size: int) -> dict:
    from bertx.evaluation.evaluate import evaluate_loaded

    articles = reference.data.dev_articles if source == (reference.run.get("data") or {}).get("dev") else None
    try:
        torch_metrics, _ = evaluate_loaded(reference, source, limit=size, articles=articles)
    except BertxError:
        return {}  # an unlabelled sample file: agreement only
    onnx_metrics, _ = evaluate_loaded(candidate, source, limit=size, articles=articles)
    return {"pytorch": torch_metrics, "onnx": onnx_metrics}


def _sequence(reference: TrainedModel, candidate: TrainedModel, source: Optional[str], size: int) -> dict:
    from bertx.inference.predictor import Predictor, decode

    predictor = Predictor.from_trained(reference)
    if source:
        examples, _ = read_examples(source, reference.task, **predictor.reading_options(), require_label=False, limit=size)
    else:
        examples = [Example(" ".join(words), None, None, i + 1) for i, words in enumerate(synthetic_words(reference.tokenizer, size))]
    features = tokenize(reference.tokenizer, examples, reference.data.max_length)
    a = model_outputs(reference.model, features, reference.pad_id)
    b = model_outputs(candidate.model, features, candidate.pad_id)
    labels = predictor.labels
    if reference.task.label_kind == "score":
        scale = max(1e-6, float(a.max() - a.min()))
        agree = np.abs(a[:, 0] - b[:, 0]) <= 0.01 * scale
    else:
        key = "labels" if reference.task.label_kind == "classes" else "label"
        agree = np.array([x[key] == y[key] for x, y in zip(decode(reference.task, a, labels), decode(reference.task, b, labels))])
    return {
        "agreement": float(agree.mean()),
        "max_abs_logit_diff": float(np.abs(a - b).max()),
        "sample": {"examples": len(examples), "unit": "label"},
    }


def _ner(reference: TrainedModel, candidate: TrainedModel, source: Optional[str], size: int) -> dict:
    from bertx.data.conll import read_tagged
    from bertx.inference.entities import EntityPredictor

    if source:
        sentences = [s.words for s in read_tagged(source, require_tags=False, limit=size)]
    else:
        sentences = synthetic_words(reference.tokenizer, size)
    tags_a = EntityPredictor(reference).tag(sentences)
    tags_b = EntityPredictor(candidate).tag(sentences)
    agree = [x[0] == y[0] for x, y in zip(tags_a, tags_b)]
    features = tokenize(reference.tokenizer, [Example(" ".join(s), None, None, i) for i, s in enumerate(sentences)], reference.data.max_length)
    return {
        "agreement": float(np.mean(agree)),
        "max_abs_logit_diff": _token_diff(reference, candidate, features, ("logits",)),
        "sample": {"examples": len(sentences), "unit": "sentence (every tag the same)"},
    }


def _qa(reference: TrainedModel, candidate: TrainedModel, source: Optional[str], size: int) -> dict:
    from bertx.data.squad import QaExample, read_qa
    from bertx.inference.answers import AnswerPredictor

    if source:
        articles = reference.data.dev_articles if source == (reference.run.get("data") or {}).get("dev") else None
        examples = read_qa(source, require_answers=False, articles=articles, limit=size)
    else:
        texts = synthetic_words(reference.tokenizer, size)
        examples = [QaExample(str(i), " ".join(words[:5]) + "?", " ".join(words)) for i, words in enumerate(texts)]
    answers_a = AnswerPredictor(reference).predict_examples(examples)
    answers_b = AnswerPredictor(candidate).predict_examples(examples)
    agree = [x["answer"] == y["answer"] for x, y in zip(answers_a, answers_b)]
    features = tokenize(reference.tokenizer, [Example(e.question, e.context, None, i) for i, e in enumerate(examples)], reference.data.max_length)
    return {
        "agreement": float(np.mean(agree)),
        "max_abs_logit_diff": _token_diff(reference, candidate, features, ("start_logits", "end_logits")),
        "sample": {"examples": len(examples), "unit": "answer text"},
    }


def _token_diff(reference: TrainedModel, candidate: TrainedModel, features, keys: tuple[str, ...]) -> float:
    a = token_outputs(reference.model, features, reference.pad_id, keys)
    b = token_outputs(candidate.model, features, candidate.pad_id, keys)
    return float(max(np.abs(x - y).max() for key in keys for x, y in zip(a[key], b[key]) if len(x)))


def calibration_features(trained: TrainedModel, size: int = 512):
    """Tokenised calibration inputs for int8: up to `size` examples spread over the run's training file
    (never its dev file, which judges the result), else sentences made from the vocabulary."""
    data = trained.run.get("data") or {}
    path = data.get("train")
    texts: list[tuple[str, Optional[str]]] = []
    if isinstance(path, str) and Path(path).is_file():
        if trained.task.name == "ner":
            from bertx.data.conll import read_tagged

            texts = [(" ".join(s.words), None) for s in read_tagged(path, require_tags=False)]
        elif trained.task.name == "qa":
            from bertx.data.squad import read_qa

            texts = [(e.question, e.context) for e in read_qa(path, require_answers=False, articles=data.get("train_articles"))]
        else:
            from bertx.inference.predictor import Predictor

            options = Predictor.from_trained(trained).reading_options()
            examples, _ = read_examples(path, trained.task, **{**options, "label_column": None}, require_label=False)
            texts = [(e.text, e.text_pair) for e in examples]
    if not texts:
        texts = [(" ".join(words), None) for words in synthetic_words(trained.tokenizer, size)]
    step = max(1, len(texts) // size)
    chosen = texts[::step][:size]
    return tokenize(trained.tokenizer, [Example(t, p, None, i) for i, (t, p) in enumerate(chosen)], trained.data.max_length)


def output_arrays(trained: TrainedModel, model, features) -> list[np.ndarray]:
    """A model's outputs on features, flattened to arrays (sequence logits; per-token logits concatenated)."""
    if trained.task.name == "ner":
        return [np.concatenate(token_outputs(model, features, trained.pad_id, ("logits",))["logits"])]
    if trained.task.name == "qa":  # one row per window, padded far below any logit: `quantize.span_error` reads rows
        found = token_outputs(model, features, trained.pad_id, ("start_logits", "end_logits"))
        width = max(len(row) for row in found["start_logits"])
        padded = lambda rows: np.stack([np.pad(r, (0, width - len(r)), constant_values=PAD_LOGIT) for r in rows])  # noqa: E731
        return [padded(found["start_logits"]), padded(found["end_logits"])]
    return [model_outputs(model, features, trained.pad_id)]
