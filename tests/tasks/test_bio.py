"""BIO decoding: constrained Viterbi never emits a dangling I-, spans come out right."""

import numpy as np

from bertx.tasks.bio import allowed_transitions, decode_tags, entity_spans, repair, viterbi

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def test_entity_spans():
    assert entity_spans(["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC"]) == [("PER", 0, 2), ("LOC", 3, 4), ("LOC", 4, 6)]
    assert entity_spans(["O", "O"]) == []


def test_repair_reads_dangling_inside_as_begin():
    assert repair(["O", "I-PER", "I-LOC", "I-LOC"]) == ["O", "B-PER", "B-LOC", "I-LOC"]


def test_viterbi_avoids_invalid_transitions():
    # Argmax would say O, I-PER (invalid). The best valid path is B-PER I-PER or O O; with these
    # numbers B-PER I-PER wins: log p = log .4 + log .9 > log .6 + log .05
    probs = np.array([[0.6, 0.4, 0.0, 0.0, 0.0], [0.05, 0.0, 0.9, 0.05, 0.0]]) + 1e-9
    assert decode_tags(np.log(probs), LABELS, "argmax") == ["O", "B-PER"]
    assert decode_tags(np.log(probs), LABELS, "viterbi") == ["B-PER", "I-PER"]


def test_viterbi_matches_brute_force_on_random_inputs():
    import itertools

    rng = np.random.default_rng(0)
    follow, start = allowed_transitions(LABELS)
    for _ in range(20):
        scores = rng.normal(size=(4, len(LABELS)))
        best, best_path = -np.inf, None
        for path in itertools.product(range(len(LABELS)), repeat=4):
            if not start[path[0]] or not all(follow[a, b] for a, b in zip(path, path[1:])):
                continue
            total = sum(scores[i, t] for i, t in enumerate(path))
            if total > best:
                best, best_path = total, list(path)
        assert viterbi(scores, follow, start) == best_path
