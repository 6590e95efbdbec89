"""Word-piece alignment and overlapping windows: every word labelled and predicted exactly once."""

import numpy as np
import pytest

from bertx.data.word_windows import IGNORE, merge_word_logits, windows, word_features
from bertx.models.encoder import load_tokenizer

LABELS = ["O", "B-PER", "I-PER"]


@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    return load_tokenizer(tiny_bert)


def test_label_on_first_piece_only(tokenizer):
    # "bob" -> b ##o ##b (the tiny vocab spells unknown words letter by letter); "good" is one piece
    words = word_features(tokenizer, [["bob", "good"]], max_length=32, overlap=4, tag_ids=[[1, 0]])
    ids = tokenizer.convert_ids_to_tokens(words.features.input_ids[0])
    assert ids == ["[CLS]", "b", "##o", "##b", "good", "[SEP]"]
    assert words.features.labels[0] == [IGNORE, 1, IGNORE, IGNORE, 0, IGNORE]


def test_label_all_subtokens_continues_as_inside(tokenizer):
    words = word_features(tokenizer, [["bob"]], 32, 4, tag_ids=[[1]], labels=LABELS, label_all_subtokens=True)
    assert words.features.labels[0] == [IGNORE, 1, 2, 2, IGNORE]


def test_windows_cover_and_respect_the_budget():
    word_ids = [w for w in range(30) for _ in range(1 + w % 3)]  # words of 1-3 pieces
    spans = windows(word_ids, budget=10, overlap=4)
    assert spans[0][0] == 0 and spans[-1][1] == len(word_ids)
    for (s1, e1), (s2, _) in zip(spans, spans[1:]):
        assert e1 - s1 <= 10 and s2 < e1  # consecutive windows overlap
        assert s2 == 0 or word_ids[s2] != word_ids[s2 - 1]  # windows start at a word start


def test_long_sentence_every_word_owned_once_and_merge_restores_order(tokenizer):
    sentence = ["good", "bob", "bad", "ann", "fine", "sad"] * 8  # 48 words, many pieces each
    tags = [[i % 3 for i in range(len(sentence))]]
    words = word_features(tokenizer, [sentence, ["good"]], max_length=16, overlap=6, tag_ids=tags + [[0]])
    assert words.windowed == 1
    assert all(length <= 16 for length in words.features.lengths)
    owned = sorted(word for f, rows in enumerate(words.owned) if words.sentence[f] == 0 for _, word in rows)
    assert owned == list(range(len(sentence)))  # each word owned by exactly one window
    labelled = sum(sum(y != IGNORE for y in row) for f, row in enumerate(words.features.labels) if words.sentence[f] == 0)
    assert labelled == len(sentence)  # ... and labelled once
    # per-window logits that encode (word index) at the owning position merge back in word order
    logits = []
    for f, row in enumerate(words.owned):
        x = np.full((words.features.lengths[f], 1), -1.0, dtype=np.float32)
        for position, word in row:
            x[position] = word
        logits.append(x)
    merged = merge_word_logits(words, logits)
    assert merged[0][:, 0].tolist() == list(range(len(sentence)))
    assert merged[1].shape == (1, 1)


def test_word_the_tokenizer_drops_becomes_unk(tokenizer):
    words = word_features(tokenizer, [["good", "\u200b", "bad"]], 32, 4, tag_ids=[[0, 1, 0]])
    assert tokenizer.convert_ids_to_tokens(words.features.input_ids[0]) == ["[CLS]", "good", "[UNK]", "bad", "[SEP]"]
    assert [w for _, w in words.owned[0]] == [0, 1, 2]
