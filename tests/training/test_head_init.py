"""Linear-probe head initialisation: the head ends up computing exactly the fitted probe."""

import random

import numpy as np
import pytest

from bertx.data.examples import Example
from bertx.data.features import tokenize
from bertx.evaluation.runner import model_outputs
from bertx.models.classifier import build_classifier
from bertx.models.encoder import load_tokenizer
from bertx.tasks import TASKS
from bertx.training.head_init import probe_init_head
from tests.conftest import toy_sentence


def toy_features(tokenizer, n, kind):
    rng = random.Random(0)
    examples, labels = [], []
    for _ in range(n):
        y = rng.randrange(3) if kind == "class3" else rng.random() < 0.5
        examples.append(Example(toy_sentence(rng, bool(y)), None, None, 1))
        labels.append(float(y) * 2.5 if kind == "score" else int(y))
    features = tokenize(tokenizer, examples, 32)
    features.labels = labels
    return features


@pytest.mark.parametrize("kind,task,labels", [("class2", "classification", ["neg", "pos"]),
                                              ("class3", "classification", ["a", "b", "c"]),
                                              ("score", "regression", [])])
def test_model_reproduces_the_probe(tiny_bert, kind, task, labels):
    tokenizer = load_tokenizer(tiny_bert)
    spec = TASKS[task]
    model = build_classifier(tiny_bert, spec, labels)
    features = toy_features(tokenizer, 120, kind)
    before = model_outputs(model, features, tokenizer.pad_token_id)
    report = probe_init_head(model, features, spec.label_kind, tokenizer.pad_token_id, max_examples=1000, seed=0)
    after = model_outputs(model, features, tokenizer.pad_token_id)
    assert report["head_init"] == "probe" and report["probe_examples"] == 120
    gold = np.asarray(features.labels)
    if spec.label_kind == "class":
        # the model's own predictions score exactly what the probe scored on the same examples
        assert (after.argmax(-1) == gold).mean() == pytest.approx(report["probe_train_score"])
        assert (after.argmax(-1) == gold).mean() > (before.argmax(-1) == gold).mean()
    else:
        r2 = 1 - ((after[:, 0] - gold) ** 2).sum() / ((gold - gold.mean()) ** 2).sum()
        assert r2 == pytest.approx(report["probe_train_score"], abs=1e-4)
