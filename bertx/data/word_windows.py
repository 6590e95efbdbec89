"""Words -> sub-token features for token classification, with overlapping windows for long sentences.

Alignment: a word's label sits on its first sub-token; its other sub-tokens get -100, which the loss
ignores (or, with `label_all_subtokens`, the word's tag, `B-X` continuing as `I-X`). A word the
tokenizer turns into nothing (a stray control or zero-width character) is fed as `[UNK]`, so every
word still gets a prediction.

Windows: a sentence longer than `max_length` sub-tokens is cut into windows that overlap by about
`overlap` sub-tokens and start and end on word boundaries. Each word is *owned* by the one window in
which it sits furthest from an edge (most context on both sides): only there does it carry a training
label, and only from there is its prediction taken. So every word is trained on once and predicted
exactly once, however the windows overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from bertx.data.features import Features

IGNORE = -100


@dataclass
class WordFeatures:
    features: Features  # one entry per window
    sentence: list[int]  # window -> sentence index
    owned: list[list[tuple[int, int]]]  # window -> [(token position, word index)] of the words it owns
    windowed: int  # sentences that needed more than one window
    num_words: list[int]  # words per sentence
    word_of: list[list[int]]  # window -> the word index of every position (-1: [CLS], [SEP])


def word_pieces(tokenizer, sentences: Sequence[Sequence[str]], chunk: int = 2048) -> list[tuple[list[int], list[int]]]:
    """Per sentence: its sub-token ids (no special tokens) and the word index of each sub-token."""
    result = []
    for begin in range(0, len(sentences), chunk):
        part = [list(words) for words in sentences[begin : begin + chunk]]
        enc = tokenizer(part, is_split_into_words=True, add_special_tokens=False, verbose=False)
        for i, words in enumerate(part):
            ids, word_ids = enc["input_ids"][i], enc.word_ids(i)
            if len(set(word_ids)) < len(words):  # some word vanished in tokenisation: feed it as [UNK]
                present = set(word_ids)
                fixed = [w if k in present else tokenizer.unk_token for k, w in enumerate(words)]
                one = tokenizer([fixed], is_split_into_words=True, add_special_tokens=False)
                ids, word_ids = one["input_ids"][0], one.word_ids(0)
            result.append((list(ids), list(word_ids)))
    return result


def windows(word_ids: list[int], budget: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) sub-token ranges covering the sentence, each at most `budget` long, cut at word
    starts where possible, consecutive ones overlapping by about `overlap` sub-tokens."""
    n = len(word_ids)
    if n <= budget:
        return [(0, n)]
    word_start = [k == 0 or word_ids[k] != word_ids[k - 1] for k in range(n)] + [True]
    spans, start = [], 0
    while True:
        end = min(start + budget, n)
        if end < n:  # pull the end back to a word start, unless one word fills the window
            cut = end
            while cut > start and not word_start[cut]:
                cut -= 1
            end = cut if cut > start else end
        spans.append((start, end))
        if end >= n:
            return spans
        nxt = max(end - overlap, start + 1)
        back = nxt
        while back > start + 1 and not word_start[back]:  # begin the next window at a word start,
            back -= 1  # earlier (more overlap) rather than later (less context)
        while nxt < end and not word_start[nxt]:
            nxt += 1
        start = back if word_start[back] else nxt


def word_features(
    tokenizer,
    sentences: Sequence[Sequence[str]],
    max_length: int,
    overlap: int,
    tag_ids: Optional[Sequence[Sequence[int]]] = None,
    labels: Optional[Sequence[str]] = None,
    label_all_subtokens: bool = False,
) -> WordFeatures:
    """Build window features (with per-token labels when `tag_ids` is given).

    Args:
        tokenizer: a HF fast tokenizer.
        sentences: words of each sentence.
        max_length: longest window, special tokens included.
        overlap: sub-tokens shared by consecutive windows of a long sentence.
        tag_ids: label id of every word (training and evaluation), or None (prediction).
        labels: the label names in id order (needed for `label_all_subtokens`).
        label_all_subtokens: label every sub-token of a word, not only its first.
    """
    budget = max_length - 2  # [CLS] ... [SEP]
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    inside = _inside_ids(labels) if label_all_subtokens and labels else None
    input_ids, label_rows, sentence_of, owned_rows, word_rows, windowed = [], [], [], [], [], 0
    for s, (ids, word_ids) in enumerate(word_pieces(tokenizer, sentences)):
        spans = windows(word_ids, budget, min(overlap, budget // 2))
        windowed += len(spans) > 1
        owner = _owners(word_ids, spans)
        for w, (start, end) in enumerate(spans):
            input_ids.append([cls] + ids[start:end] + [sep])
            word_rows.append([-1] + list(word_ids[start:end]) + [-1])
            sentence_of.append(s)
            owned, row = [], [IGNORE] * (end - start + 2)
            for k in range(start, end):
                word = word_ids[k]
                if owner[word] != w:
                    continue
                first = k == 0 or word_ids[k - 1] != word
                if first:
                    owned.append((k - start + 1, word))
                if tag_ids is not None and (first or inside is not None):
                    tag = tag_ids[s][word]
                    row[k - start + 1] = tag if first else inside[tag]
            owned_rows.append(owned)
            label_rows.append(row)
    features = Features(
        input_ids=input_ids,
        token_type_ids=[[0] * len(x) for x in input_ids],
        labels=label_rows if tag_ids is not None else None,
        lengths=[len(x) for x in input_ids],
        label_pad=IGNORE,
    )
    return WordFeatures(features, sentence_of, owned_rows, windowed, [len(words) for words in sentences], word_rows)


def _owners(word_ids: list[int], spans: list[tuple[int, int]]) -> dict[int, int]:
    """word -> the window where its first sub-token is furthest from an edge."""
    owner: dict[int, int] = {}
    margin: dict[int, int] = {}
    for w, (start, end) in enumerate(spans):
        for k in range(start, end):
            word = word_ids[k]
            if k > 0 and word_ids[k - 1] == word:
                continue  # not the word's first sub-token
            room = min(k - start, end - 1 - k)
            if word not in owner or room > margin[word]:
                owner[word], margin[word] = w, room
    return owner


def _inside_ids(labels: Sequence[str]) -> list[int]:
    """For each label id, the id a continuation sub-token gets: B-X -> I-X, others unchanged."""
    index = {name: i for i, name in enumerate(labels)}
    return [index.get("I-" + name[2:], i) if name.startswith("B-") else i for i, name in enumerate(labels)]


def merge_word_logits(word_features: WordFeatures, logits: list) -> list:
    """Per-window token logits -> per-sentence (W, C) word logits, each word from its owning window."""
    import numpy as np

    num_labels = logits[0].shape[-1] if logits else 0
    merged = [np.zeros((n, num_labels), dtype=np.float32) for n in word_features.num_words]
    for f, owned in enumerate(word_features.owned):
        sentence = word_features.sentence[f]
        for position, word in owned:
            merged[sentence][word] = logits[f][position]
    return merged


def aligned_word_logits(teacher_words: WordFeatures, teacher_logits: list, student_words: WordFeatures) -> list:
    """A teacher's per-token logits moved onto a student that splits the same sentences into other pieces:
    each word's logits (from the teacher window that owns it, at its first piece) go to every piece of that
    word in every student window; [CLS] and [SEP] get zeros (a uniform target; no prediction reads them)."""
    import numpy as np

    words = merge_word_logits(teacher_words, teacher_logits)
    num_labels = teacher_logits[0].shape[-1] if len(teacher_logits) else 0
    aligned = []
    for f, positions in enumerate(student_words.word_of):
        sentence = words[student_words.sentence[f]]
        rows = np.zeros((len(positions), num_labels), dtype=np.float32)
        for p, word in enumerate(positions):
            if word >= 0:
                rows[p] = sentence[word]
        aligned.append(rows)
    return aligned
