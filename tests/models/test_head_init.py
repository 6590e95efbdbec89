"""Linear-probe head initialisation: the head ends up computing exactly the fitted probe."""

import random

import numpy as np
import pytest

from bertx.data.examples import Example
from bertx.data.features import tokenize
from bertx.models.batched_outputs import model_outputs
from bertx.models.heads import build_classifier
from bertx.models.encoder import load_tokenizer
from bertx.tasks import TASKS
from bertx.models.head_init import head_features, output_layer, probe_init_head
from tests.conftest import toy_sentence


def toy_features(tokenizer, n, kind):
    rng = random.Random(0)
    examples, labels = [], []
    for _ in range(n):
        y = rng.randrange(3) if kind == "class3" else rng.random() < 0.5
        text = "the film and the plot" if y == 2 else toy_sentence(rng, bool(y))  # class 2: no sentiment word
        examples.append(Example(text, None, None, 1))
        labels.append(float(y) * 2.5 if kind == "score" else int(y))
    features = tokenize(tokenizer, examples, 32)
    features.labels = labels
    return features


@pytest.mark.parametrize(
    "kind,task,labels", [("class2", "classification", ["neg", "pos"]), ("class3", "classification", ["a", "b", "c"]), ("score", "regression", [])]
)
@pytest.mark.parametrize("seed", [0, 1])
def test_head_computes_the_fitted_probe(tiny_bert, kind, task, labels, seed):
    import torch
    from sklearn.linear_model import LogisticRegression, Ridge

    torch.manual_seed(seed)  # the fresh head's random init
    tokenizer = load_tokenizer(tiny_bert)
    spec = TASKS[task]
    model = build_classifier(tiny_bert, spec, labels)
    features = toy_features(tokenizer, 120, kind)
    x = head_features(model, output_layer(model, model.config.num_labels), features, list(range(120)), 0)
    gold = np.asarray(features.labels)
    report = probe_init_head(model, features, spec.label_kind, tokenizer.pad_token_id, max_examples=1000, seed=0)
    assert report["head_init"] == "probe" and report["probe_examples"] == 120
    logits = model_outputs(model, features, tokenizer.pad_token_id).astype(np.float64)
    if kind == "score":
        expected = Ridge(alpha=1.0).fit(x, gold).predict(x)
        np.testing.assert_allclose(logits[:, 0], expected, atol=1e-4)
    else:
        probe = LogisticRegression(C=1.0, max_iter=1000).fit(x, gold)
        decision = probe.decision_function(x)
        if kind == "class2":  # one direction split over two logits
            np.testing.assert_allclose(logits[:, 1] - logits[:, 0], decision, atol=1e-4)
        else:
            np.testing.assert_allclose(logits, decision, atol=1e-4)
        assert report["probe_train_score"] == pytest.approx(probe.score(x, gold), abs=1e-4)
