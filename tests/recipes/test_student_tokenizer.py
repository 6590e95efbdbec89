"""A small student with its own tokenizer (a WordPiece learnt from the transfer set): it learns the toy task
from a teacher that reads the same texts with its own pieces, carries its tokenizer in its folder, starts its
embedding rows from the teacher's pieces, labels unlabelled text through the teacher's tokenizer (once, in the
teacher store), and what it cannot take is refused in one line."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

import bertx
from bertx.data.wordpiece import wordpiece_tokenizer
from bertx.errors import BertxError
from bertx.models.small_students import aligned_rows, load_small_student
from bertx.runfolder import read_run_config
from tests.conftest import NEUTRAL, POSITIVE, count_teacher_passes
from tests.recipes.test_distill import kd_config, teacher  # noqa: F401  (the module-scoped tiny teacher)
from tests.recipes.test_small_students import ner_teacher  # noqa: F401  (the module-scoped tiny NER teacher)


def test_a_bilstm_with_its_own_wordpiece_learns_from_the_teacher(teacher, tmp_path):  # noqa: F811
    tmp, train, dev = teacher
    out = tmp_path / "own"
    config = kd_config(tmp, train, dev, out, student={"kind": "bilstm", "hidden": 32, "tokenizer": "train", "vocab_size": 70})
    config["train"]["epochs"] = 6
    final = bertx.distill(config, show_progress=False)
    assert final["accuracy"] > 0.85, final
    own, teachers = AutoTokenizer.from_pretrained(out), AutoTokenizer.from_pretrained(tmp / "model")
    assert len(own) <= 70 < len(teachers) and own.get_vocab() != teachers.get_vocab()
    assert load_small_student(out).get_input_embeddings().weight.shape[0] == len(own)
    rows = [line.split("\t") for line in open(dev, encoding="utf-8").read().splitlines()[1:]]
    predicted = bertx.Predictor.load(out).predict([text for text, _ in rows])  # through the folder's own tokenizer
    assert sum(p["label"] == gold for p, (_, gold) in zip(predicted, rows)) / len(rows) == pytest.approx(final["accuracy"])
    assert bertx.evaluate(out, dev)["accuracy"] == pytest.approx(final["accuracy"])


def test_unlabelled_text_is_read_by_each_with_its_own_pieces_and_labelled_once(teacher, tmp_path, monkeypatch):  # noqa: F811
    tmp, train, dev = teacher
    sizes = count_teacher_passes(monkeypatch)
    monkeypatch.setenv("BERTX_CACHE", str(tmp_path / "cache"))
    extra = tmp_path / "more.txt"
    extra.write_text("\n".join(f"{word} film and plot" for word in POSITIVE * 5) + "\n", encoding="utf-8")
    student = {"kind": "cnn", "hidden": 16, "tokenizer": "train", "vocab_size": 45}
    final = bertx.distill(kd_config(tmp, train, dev, tmp_path / "a", student=student, unlabelled=[str(extra)]), show_progress=False)
    assert final["unlabelled_examples"] == 40 and sizes == [240, 40]
    # Another vocabulary for the student: the teacher's outputs on its own pieces come from the store.
    student = {**student, "vocab_size": 60}
    bertx.distill(kd_config(tmp, train, dev, tmp_path / "b", student=student, unlabelled=[str(extra)]), show_progress=False)
    assert sizes == [240, 40]
    assert read_run_config(tmp_path / "b")["transfer_set"]["from_store"] == 280


def test_each_own_piece_starts_from_the_teachers_pieces_of_its_text(teacher):  # noqa: F811
    tmp, _, _ = teacher
    teachers = AutoTokenizer.from_pretrained(tmp / "model")
    own = wordpiece_tokenizer(["good goodness films", "bright plot"] * 20, 40, True)
    table = torch.arange(len(teachers), dtype=torch.float32).unsqueeze(1).repeat(1, 3)  # row i holds i
    rows = aligned_rows(table, own, teachers)
    vocab, teacher_vocab = own.get_vocab(), teachers.get_vocab()
    assert rows.shape == (len(own), 3)
    assert rows[vocab["good"], 0] == teacher_vocab["good"]  # a piece both have keeps the teacher's row
    pieces = teachers("goodness", add_special_tokens=False)["input_ids"]
    if "goodness" in vocab and len(pieces) > 1:  # a word the teacher splits: the mean of its pieces' rows
        assert rows[vocab["goodness"], 0] == pytest.approx(sum(pieces) / len(pieces))
    assert rows[vocab["[CLS]"], 0] == teacher_vocab["[CLS]"]
    assert set(NEUTRAL) & set(vocab) <= set(teacher_vocab)


@pytest.mark.parametrize(
    "student, message",
    [
        ({"layers": 1, "tokenizer": "train"}, "student.tokenizer: for bilstm, cnn and bag students"),
        ({"kind": "bag", "tokenizer": "train"}, None),
        ({"kind": "bilstm", "tokenizer": "no/such/folder"}, "no such folder"),
        ({"kind": "bilstm", "tokenizer": "train", "vocab_size": 60, "cache": False}, "from stored teacher outputs"),
    ],
)
def test_what_an_own_tokenizer_cannot_take_is_refused(teacher, tmp_path, student, message):  # noqa: F811
    tmp, train, dev = teacher
    student = dict(student)
    live = not student.pop("cache", True)  # a teacher run live on the student's batches would read the wrong pieces
    config = kd_config(tmp, train, dev, tmp_path / "x", student=student, **({"cache_teacher": False} if live else {}))
    if message is None:  # accepted: a bag of embeddings on its own pieces, sequence task
        config["train"]["max_steps"] = 2
        bertx.distill(config, show_progress=False)
        return
    with pytest.raises(BertxError, match=message):
        bertx.distill(config, show_progress=False)
    assert not (tmp_path / "x").exists()


def test_a_taggers_targets_move_word_by_word_onto_the_students_pieces(ner_teacher):  # noqa: F811
    """Each student piece carries the teacher's outputs at the teacher's first piece of the same word, in every
    window of a sentence longer than one window; [CLS] and [SEP] carry none."""
    import numpy as np

    from bertx.data.word_windows import aligned_word_logits, word_features

    tmp = ner_teacher[0]
    teachers = AutoTokenizer.from_pretrained(tmp / "ner")
    sentences = [["Johnny", "visited", "Parisians", "yesterday"], ["a", "bright", "goodness", "films"] * 6]
    own = wordpiece_tokenizer([" ".join(s) for s in sentences] * 10, 40, True)
    teacher_words = word_features(teachers, sentences, 12, 4)
    student_words = word_features(own, sentences, 12, 4)
    assert len(student_words.features.input_ids) > 2  # the long sentence needs several windows
    # the teacher's logits at every position: (word index, sentence index), so each target names its source
    logits = [np.array([[w, teacher_words.sentence[f]] for w in words], dtype=np.float32) for f, words in enumerate(teacher_words.word_of)]
    aligned = aligned_word_logits(teacher_words, logits, student_words)
    for f, words in enumerate(student_words.word_of):
        assert len(aligned[f]) == len(student_words.features.input_ids[f])
        for p, word in enumerate(words):
            expected = [0, 0] if word < 0 else [word, student_words.sentence[f]]
            assert aligned[f][p].tolist() == expected
    assert [len(w) for w in student_words.word_of] != [len(w) for w in teacher_words.word_of]  # the two split words otherwise


def test_a_bilstm_tagger_on_its_own_wordpiece_learns_ner(ner_teacher, tmp_path):  # noqa: F811
    tmp, train, dev, teacher_f1 = ner_teacher
    out = tmp_path / "own-tagger"
    final = bertx.distill(
        {
            "teacher": str(tmp / "ner"),
            "output": str(out),
            "student": {"kind": "bilstm", "hidden": 32, "tokenizer": "train", "vocab_size": 80},
            "data": {"train": train, "dev": dev, "max_length": 32},
            "train": {"epochs": 20, "batch_size": 16, "lr": 5e-3, "save_steps": None, "seed": 3},
        },
        show_progress=False,
    )
    assert final["f1"] > 0.7 * teacher_f1, (final, teacher_f1)
    own, teachers = AutoTokenizer.from_pretrained(out), AutoTokenizer.from_pretrained(tmp / "ner")
    assert len(own) <= 80 < len(teachers)
    assert bertx.evaluate(out, dev)["f1"] == pytest.approx(final["f1"])
    words = next(b for b in open(dev, encoding="utf-8").read().split("\n\n") if "B-" in b and "DOCSTART" not in b)
    sentence = " ".join(line.split()[0] for line in words.splitlines() if line.strip())
    assert bertx.EntityPredictor.load(out).predict([sentence])[0]  # reads through its own tokenizer
