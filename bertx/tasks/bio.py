"""BIO tag sequences: checking and converting schemes, the label space, decoding and entity spans.

Tags are `O`, `B-TYPE` or `I-TYPE`. Files in IOB1 (where `I-` may open an entity and `B-` only
separates two adjacent entities of one type) are converted to BIO (IOB2) on reading. In a BIO file an
`I-X` that follows `O` or another type is invalid; by default it is repaired to `B-X` (as conlleval
reads it) and counted in the run log, and with `invalid_tags: error` it stops the run at its line.

Decoding picks, per sentence, the most probable tag sequence that is valid BIO (Viterbi over the
per-word log-probabilities with invalid transitions forbidden), so predictions never hold a dangling
`I-` and strict entity scoring counts every entity the model meant.
"""

from __future__ import annotations

import re
from typing import Literal, Sequence

import numpy as np

from bertx.data.conll import TaggedSentence
from bertx.errors import DataError

TAG = re.compile(r"^(?:O|[BI]-\S+)$")


def entity_type(tag: str) -> str | None:
    return None if tag == "O" else tag[2:]


def normalise_tags(
    sentences: Sequence[TaggedSentence], path: str, scheme: Literal["bio", "iob1"] = "bio", invalid: Literal["repair", "error"] = "repair"
) -> int:
    """Check every tag, convert IOB1 to BIO, and repair (or reject) invalid `I-` tags, in place.

    Returns:
        How many tags were repaired (always 0 for IOB1, whose `I-` openings are valid).
    """
    repaired = 0
    for sentence in sentences:
        previous = "O"
        for k, tag in enumerate(sentence.tags or []):
            if not TAG.match(tag):
                raise DataError(path, sentence.lines[k], f"tag {tag!r} is not O, B-TYPE or I-TYPE")
            if tag.startswith("I-") and entity_type(previous) != tag[2:]:
                if scheme == "bio" and invalid == "error":
                    raise DataError(
                        path,
                        sentence.lines[k],
                        f"tag {tag!r} follows {previous!r}: invalid BIO (set data.invalid_tags=repair to read it as B-, or data.tag_scheme=iob1)",
                    )
                sentence.tags[k] = "B-" + tag[2:]
                repaired += scheme == "bio"
            previous = tag
    return repaired


def build_tag_space(sentences: Sequence[TaggedSentence]) -> list[str]:
    """`O`, then `B-T`, `I-T` for every entity type T seen in training (both, even if one never occurs,
    so that a dev `I-T` of a type seen in training is never unknown)."""
    types = sorted({entity_type(tag) for s in sentences for tag in s.tags or [] if tag != "O"})
    return ["O"] + [f"{prefix}-{t}" for t in types for prefix in ("B", "I")]


def encode_tags(sentence: TaggedSentence, label2id: dict[str, int], path: str) -> list[int]:
    ids = []
    for k, tag in enumerate(sentence.tags or []):
        if tag not in label2id:
            raise DataError(
                path,
                sentence.lines[k],
                f"tag {tag!r} was never seen in training (known types: {', '.join(sorted({t[2:] for t in label2id if t != 'O'}))})",
            )
        ids.append(label2id[tag])
    return ids


def allowed_transitions(labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Which tag may follow which (C, C), and which may open a sentence (C,): `I-X` only after `B-X`/`I-X`."""
    types = [entity_type(tag) for tag in labels]
    inside = np.array([tag.startswith("I-") for tag in labels])
    start = ~inside
    follow = np.ones((len(labels), len(labels)), dtype=bool)
    for j in range(len(labels)):
        if inside[j]:
            follow[:, j] = [types[i] == types[j] for i in range(len(labels))]
    return follow, start


def viterbi(log_probs: np.ndarray, follow: np.ndarray, start: np.ndarray) -> list[int]:
    """Most probable valid tag-id sequence for one sentence; `log_probs` is (W, C)."""
    forbidden = -1e9
    score = log_probs[0] + np.where(start, 0.0, forbidden)  # (C,)
    transition = np.where(follow, 0.0, forbidden)  # (C_prev, C_next)
    back = np.zeros(log_probs.shape, dtype=np.int64)
    for w in range(1, len(log_probs)):
        total = score[:, None] + transition  # (C_prev, C_next)
        back[w] = total.argmax(axis=0)
        score = total.max(axis=0) + log_probs[w]
    path = [int(score.argmax())]
    for w in range(len(log_probs) - 1, 0, -1):
        path.append(int(back[w, path[-1]]))
    return path[::-1]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def decode_tags(word_logits: np.ndarray, labels: Sequence[str], method: Literal["viterbi", "argmax"] = "viterbi") -> list[str]:
    """Tags of one sentence from its (W, C) word logits."""
    if len(word_logits) == 0:
        return []
    if method == "argmax":
        return repair([labels[i] for i in word_logits.argmax(-1)])
    follow, start = allowed_transitions(labels)
    return [labels[i] for i in viterbi(log_softmax(word_logits), follow, start)]


def repair(tags: list[str]) -> list[str]:
    """Read a dangling `I-X` (after `O` or another type) as `B-X`, as conlleval does."""
    out, previous = [], "O"
    for tag in tags:
        if tag.startswith("I-") and entity_type(previous) != tag[2:]:
            tag = "B-" + tag[2:]
        out.append(tag)
        previous = tag
    return out


def entity_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(type, first word, last word + 1) of every entity in a valid BIO sequence."""
    spans, current = [], None
    for k, tag in enumerate(list(tags) + ["O"]):
        if current and not (tag.startswith("I-") and tag[2:] == current[0]):
            spans.append((current[0], current[1], k))
            current = None
        if tag.startswith("B-") or (tag.startswith("I-") and current is None):
            current = (tag[2:], k)
    return spans
