"""A bag-of-embeddings student answered from its unpadded ids gives the torch model's outputs: single texts and pairs (segment
embeddings), truncated inputs, classification and regression; other models fall back to torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertx.data.examples import Example
from bertx.data.features import tokenize
from bertx.models.bag_fast import bag_logits
from bertx.models.batched_outputs import model_outputs
from bertx.models.small_students import SequenceStudent, SmallStudentConfig


def student(kind: str = "bag", vocab: int = 1000, labels: int = 3, problem_type: str | None = None) -> SequenceStudent:
    config = SmallStudentConfig(
        kind=kind, vocab_size=vocab, embedding_dim=24, hidden=16, layers=1, kernel_sizes=[3], dropout=0.1, pad_id=0,
        id2label={i: f"L{i}" for i in range(labels)}, problem_type=problem_type, num_labels=labels,
    )  # fmt: skip
    torch.manual_seed(0)
    model = SequenceStudent(config)
    with torch.no_grad():
        model.body.segments.weight.normal_()  # zeros at birth: make the segments count
    return model.eval()


@pytest.mark.parametrize("pairs", [False, True])
@pytest.mark.parametrize("labels, problem_type", [(3, None), (1, "regression")])
def test_the_unpadded_bag_gives_the_padded_logits(tiny_bert, pairs, labels, problem_type):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    model = student(vocab=len(tokenizer), labels=labels, problem_type=problem_type)
    texts = ["a good film", "the story was dull and sad and far too long for anyone", "ok"]
    examples = [Example(t, "a second text" if pairs else None, None, i + 1) for i, t in enumerate(texts)]
    whole = sorted(tokenize(tokenizer, examples, max_length=512).lengths)
    features = tokenize(tokenizer, examples, max_length=whole[1])
    assert features.truncated_rows == [1]  # the long one is cut
    fast = bag_logits(model, features)
    slow = model_outputs(model, features, tokenizer.pad_token_id, batch_size=2)
    assert fast is not None and fast.shape == slow.shape == (3, labels)
    np.testing.assert_allclose(fast, slow, atol=1e-5)


def test_other_models_and_modes_fall_back_to_torch(tiny_bert):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    features = tokenize(tokenizer, [Example("a good film", None, None, 1)], max_length=8)
    assert bag_logits(student("cnn", vocab=len(tokenizer)), features) is None
    assert bag_logits(student(vocab=len(tokenizer)).train(), features) is None  # dropout on: torch decides
    assert bag_logits(torch.nn.Linear(2, 2), features) is None
