"""SQuAD EM / F1 against hand-computed values."""

import pytest

from bertx.metrics.squad import exact_match, f1, normalize_answer, squad_metrics


def test_normalisation_drops_case_punctuation_articles_and_spaces():
    assert normalize_answer("The  Eiffel   Tower!") == "eiffel tower"
    assert normalize_answer("an apple, a pear") == "apple pear"
    assert normalize_answer("theatre") == "theatre"  # "the" only as a whole word


def test_exact_match():
    assert exact_match("the Eiffel Tower", "Eiffel tower.") == 1.0
    assert exact_match("Eiffel", "Eiffel Tower") == 0.0


def test_f1_by_hand():
    # prediction "eiffel tower paris" vs gold "eiffel tower": common 2, precision 2/3, recall 1 -> F1 0.8
    assert f1("Eiffel Tower, Paris", "the Eiffel Tower") == pytest.approx(0.8)
    # repeated words count with multiplicity: pred "a b b" -> "b b", gold "b" -> common 1, P 1/2, R 1 -> 2/3
    assert f1("b b", "b") == pytest.approx(2 / 3)
    assert f1("nothing", "else") == 0.0
    assert f1("the", "a") == 1.0  # both normalise to nothing


def test_dataset_score_takes_the_best_gold_answer():
    metrics = squad_metrics(["Denver Broncos", "1990"], [["Broncos", "Denver Broncos"], ["in 1991"]])
    assert metrics["exact_match"] == pytest.approx(0.5)
    assert metrics["f1"] == pytest.approx((1.0 + 0.0) / 2)
