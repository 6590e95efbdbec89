"""A small student's own tokenizer: a WordPiece learnt from the transfer set (or a given tokenizer folder).

    the teacher's reading of the training texts (decoded back to words) + the unlabelled texts
    -> a WordPiece of `student.vocab_size` pieces, cased as the teacher's -> the student reads every text
       with it; the teacher reads the same texts with its own pieces, so its soft targets (one per text)
       line up example for example; a tagger's (one per piece) line up word by word: each word's outputs,
       read at the teacher's first piece of it, go to every student piece of the word

A BiLSTM or CNN spends most of its parameters on its embedding table; a vocabulary learnt on the task's own
text is a quarter of the teacher's 30k pieces and keeps whole the words the task uses. The student's rows
start from the teacher's: each new piece gets the mean of the teacher's embeddings of its teacher pieces
(`models/small_students.aligned_rows`).
"""

from __future__ import annotations

from pathlib import Path

from bertx.config import DistillConfig
from bertx.data.hf_datasets import local_file
from bertx.data.transfer_set import unlabelled_examples, unlabelled_word_lists
from bertx.data.word_windows import aligned_word_logits
from bertx.data.wordpiece import wordpiece_tokenizer
from bertx.errors import BertxError
from bertx.models.encoder import load_tokenizer
from bertx.models.small_students import KINDS as SMALL_KINDS
from bertx.training.teacher_cache import TeacherCache


def check_student_tokenizer(config: DistillConfig, task) -> None:
    """What a student with its own tokenizer can learn, refused in one line before any work."""
    student = config.student
    if not student.tokenizer:
        return
    if student.kind not in SMALL_KINDS:
        raise BertxError(
            f"student.tokenizer: for bilstm, cnn and bag students (a {student.kind} student reads the teacher's pieces; "
            "another encoder brings its own with student.name_or_path)"
        )
    if task.level == "span":
        raise BertxError(f"student.tokenizer: for sequence tasks and taggers (soft targets per text or per word); the teacher is a {task.name} model")
    if student.tokenizer != "train" and not Path(student.tokenizer).is_dir():
        raise BertxError(f"{student.tokenizer}: student.tokenizer is `train` or a tokenizer folder; no such folder")


def student_tokenizer(config: DistillConfig, teacher, train_path: str):
    """The student's own tokenizer, or None when it reads the teacher's (no `student.tokenizer`)."""
    if not config.student.tokenizer:
        return None
    if config.student.tokenizer != "train":
        return load_tokenizer(config.student.tokenizer)
    data_cfg = config.data
    read = teacher.kind.load_train(train_path, data_cfg, teacher.tokenizer)  # the texts of the transfer set, as drawn
    texts = teacher.tokenizer.batch_decode(read.features.input_ids, skip_special_tokens=True)
    columns = read.info.get("columns") or {}
    reading = {"text_column": columns.get("text"), "text_pair_column": columns.get("text_pair")}
    unlabelled = [local_file(data_cfg.resolve(p)) for p in config.unlabelled]
    if teacher.task.label_kind == "tags":
        if unlabelled:
            texts.extend(" ".join(words) for words in unlabelled_word_lists(unlabelled))
        return wordpiece_tokenizer(texts, config.student.vocab_size, bool(getattr(teacher.tokenizer, "do_lower_case", True)))
    for example in unlabelled_examples(unlabelled, teacher.task, reading):
        texts.append(example.text)
        if example.text_pair:
            texts.append(example.text_pair)
    lowercase = bool(getattr(teacher.tokenizer, "do_lower_case", True))
    return wordpiece_tokenizer(texts, config.student.vocab_size, lowercase)


def tagger_targets_on_own_pieces(label, teacher_words, student_words) -> TeacherCache:
    """A tagger teacher's outputs for a student that splits words into other pieces: the teacher labels its own
    windows of the sentences (stored under that reading), and each word's outputs move onto every piece of the
    word in the student's windows of the same sentences, the ones the student trains on."""
    logits = label(teacher_words.features).outputs["logits"]
    return TeacherCache.from_outputs("tags", {"logits": aligned_word_logits(teacher_words, logits, student_words)})
