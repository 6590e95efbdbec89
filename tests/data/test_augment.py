"""Augmentation rules for distillation transfer sets: rates, n-gram lengths, classes, determinism."""

import random

from bertx.data.augment import augment, shape, variant, word_classes


def test_masking_and_replacement_rates_follow_the_probabilities():
    words = ["word"] * 20_000
    classes = {"lower": ["other"]}
    out = variant(words, random.Random(0), classes, "[MASK]", p_mask=0.1, p_replace=0.2, p_ngram=0.0)
    assert abs(out.count("[MASK]") / len(words) - 0.1) < 0.01
    assert abs(out.count("other") / len(words) - 0.2) < 0.01


def test_ngrams_are_contiguous_and_at_most_five_words():
    words = [str(i) for i in range(30)]
    for seed in range(200):
        out = variant(words, random.Random(seed), {}, "[MASK]", 0.0, 0.0, p_ngram=1.0)
        assert 1 <= len(out) <= 5
        first = int(out[0])
        assert out == [str(i) for i in range(first, first + len(out))]


def test_replacements_keep_the_word_shape():
    classes = word_classes(["The film was Great and 1990 was fine ."])
    assert classes["capitalised"] == ["Great", "The"] and classes["digits"] == ["1990"] and classes["punct"] == ["."]
    out = variant(["Paris", "99", "!"], random.Random(3), classes, "[MASK]", 0.0, 1.0, 0.0)
    assert [shape(w) for w in out] == ["capitalised", "digits", "punct"]


def test_augment_is_deterministic_per_seed_and_keeps_pairs_aligned():
    texts, pairs = ["a good film", "a bad story indeed"], ["fine", "sad and dull"]
    first = augment(texts, pairs, 3, seed=7, mask_token="[MASK]")
    assert first == augment(texts, pairs, 3, seed=7, mask_token="[MASK]")
    assert first != augment(texts, pairs, 3, seed=8, mask_token="[MASK]")
    assert len(first[0]) == len(first[1]) == 6
    assert augment(texts, None, 2, seed=7, mask_token="[MASK]")[1] is None
