"""The distillation transfer set: the text a teacher labels beyond the labelled training data.

    unlabelled files (.txt lines, or TSV/CSV/JSONL text columns) -> unlabelled features
    unlabelled sentences (a line of words) -> tagger windows, every word's first piece a position to label
    the training texts -> N augmented variants each (`augment.py`) -> unlabelled features
    extra features + the teacher's decisions -> appended to the training features
and the training targets renumbered into the teacher's label order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bertx.data.augment import augment, neighbours
from bertx.data.examples import Example, read_examples
from bertx.data.features import tokenize
from bertx.data.readers import read_text_lines
from bertx.data.task_spec import TaskSpec
from bertx.data.word_windows import word_features
from bertx.errors import BertxError


def unlabelled_examples(paths: list[str], spec: TaskSpec, reading: dict) -> list[Example]:
    """Unlabelled texts (a .txt line each, or the text columns of TSV/CSV/JSONL), as examples without labels."""
    examples = []
    for path in paths:
        if not Path(path).is_file():
            raise BertxError(f"{path}: unlabelled text file not found")
        if Path(path).suffix.lower() == ".txt":
            found = [Example(text, None, None, i + 1) for i, text in enumerate(read_text_lines(path))]
        else:
            found, _ = read_examples(path, spec, reading.get("text_column"), reading.get("text_pair_column"), None, require_label=False)
        if not found:
            raise BertxError(f"{path}: no text in the unlabelled file")
        examples.extend(found)
    return examples


def read_unlabelled(paths: list[str], spec: TaskSpec, tokenizer, max_length: int, reading: dict):
    """Unlabelled texts as unlabelled features."""
    return tokenize(tokenizer, unlabelled_examples(paths, spec, reading), max_length)


def unlabelled_word_lists(paths: list[str]) -> list[list[str]]:
    """The sentences of unlabelled files for a tagger: a line of words each."""
    sentences = []
    for path in paths:
        if not Path(path).is_file():
            raise BertxError(f"{path}: unlabelled text file not found")
        sentences.extend(words for words in (line.split() for line in read_text_lines(path)) if words)
    if not sentences:
        raise BertxError(f"{', '.join(paths)}: no text in the unlabelled files")
    return sentences


def unlabelled_sentences(sentences: list[list[str]], tokenizer, max_length: int, overlap: int, labels: list[str], label_all_subtokens: bool):
    """Unlabelled sentences as tagger windows (WordFeatures); each word's first piece is a labelled position
    (tag 0 for now: the teacher's decision replaces it)."""
    return word_features(tokenizer, sentences, max_length, overlap, [[0] * len(w) for w in sentences], labels, label_all_subtokens)


def augmented_examples(
    train_path: str,
    spec: TaskSpec,
    tokenizer,
    limit: int | None,
    reading: dict,
    n: int,
    seed: int,
    embeddings: np.ndarray | None = None,
) -> list[Example]:
    """`n` augmented variants of every training text (`augment.py`), unlabelled. With the teacher's input
    `embeddings` (and its `tokenizer`), words are replaced by their nearest training words in that space."""
    examples, _ = read_examples(train_path, spec, reading.get("text_column"), reading.get("text_pair_column"), None, require_label=False, limit=limit)
    pairs = [e.text_pair for e in examples] if any(e.text_pair for e in examples) else None
    texts = [e.text for e in examples] + [p for p in (pairs or []) if p]
    near = neighbours(texts, tokenizer, embeddings) if embeddings is not None else None
    texts, new_pairs = augment([e.text for e in examples], pairs, n, seed, tokenizer.mask_token or "[MASK]", near=near)
    return [Example(t, new_pairs[i] if new_pairs else None, None, i + 1) for i, t in enumerate(texts)]


def augmented_features(
    train_path: str,
    spec: TaskSpec,
    tokenizer,
    max_length: int,
    limit: int | None,
    reading: dict,
    n: int,
    seed: int,
    embeddings: np.ndarray | None = None,
):
    """The augmented variants (`augmented_examples`), tokenised."""
    return tokenize(tokenizer, augmented_examples(train_path, spec, tokenizer, limit, reading, n, seed, embeddings), max_length)


def append_features(features, extra, labels) -> None:
    features.input_ids.extend(extra.input_ids)
    if features.token_type_ids is not None:
        features.token_type_ids.extend(extra.token_type_ids or [[0] * n for n in extra.lengths])
    features.lengths.extend(extra.lengths)
    features.labels.extend(labels)


def remap_targets(features, label_kind: str, old: list[str], new: dict[str, int]) -> None:
    """Renumber the training targets from the data's label order to the teacher's."""
    if label_kind not in ("class", "classes", "tags") or [new.get(name) for name in old] == list(range(len(old))):
        return
    index = np.array([new[name] for name in old])
    if label_kind == "class":
        features.labels = [int(index[y]) for y in features.labels]
    elif label_kind == "tags":
        features.labels = [[int(index[y]) if y >= 0 else y for y in row] for row in features.labels]
    else:  # multi-hot rows over the labels
        remapped = []
        for row in features.labels:
            out = [0.0] * len(new)
            for j, value in enumerate(row):
                out[index[j]] = value
            remapped.append(out)
        features.labels = remapped
