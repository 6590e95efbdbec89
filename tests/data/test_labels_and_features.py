"""Label spaces, target encoding and tokenisation with truncation counting."""

import pytest

from bertx.data.examples import Example
from bertx.data.features import tokenize
from bertx.errors import DataError
from bertx.tasks import TASKS
from bertx.data.labels import build_label_space, encode_label


def test_label_space_sorts_numbers_numerically():
    assert build_label_space(TASKS["classification"], ["10", "2", "1"]) == ["1", "2", "10"]
    assert build_label_space(TASKS["classification"], ["pos", "neg"]) == ["neg", "pos"]
    assert build_label_space(TASKS["multilabel"], [["b"], ["a", "c"], []]) == ["a", "b", "c"]
    assert build_label_space(TASKS["regression"], [1.0, 2.0]) == []


def test_unseen_dev_label_is_an_error():
    with pytest.raises(DataError, match=r"dev.tsv:7: label 'maybe' was never seen in training"):
        encode_label(TASKS["classification"], "maybe", {"no": 0, "yes": 1}, "dev.tsv", 7)


def test_targets():
    assert encode_label(TASKS["classification"], "yes", {"no": 0, "yes": 1}, "f", 1) == 1
    assert encode_label(TASKS["multilabel"], ["a", "c"], {"a": 0, "b": 1, "c": 2}, "f", 1) == [1.0, 0.0, 1.0]
    assert encode_label(TASKS["regression"], 3.5, {}, "f", 1) == 3.5


def test_truncation_is_counted(tiny_bert):
    from bertx.models.encoder import load_tokenizer

    tok = load_tokenizer(tiny_bert)
    examples = [Example("good " * 50, None, None, 1), Example("bad film", None, None, 2)]
    features = tokenize(tok, examples, max_length=16)
    assert features.truncated == 1
    assert features.lengths == [16, 4]  # [CLS] bad film [SEP]
    pairs = [Example("good " * 30, "bad " * 30, None, 1)]
    features = tokenize(tok, pairs, max_length=20)
    assert features.truncated == 1 and features.lengths == [20]
    assert set(features.token_type_ids[0]) == {0, 1}
