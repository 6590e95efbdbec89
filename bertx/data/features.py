"""Examples -> token features: one fast-tokenizer pass, no padding (batches pad themselves).

Texts longer than `max_length` tokens are truncated, and how many were is returned, so the run log
can say so instead of losing text silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from bertx.data.examples import Example


@dataclass
class Features:
    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    labels: list | None = None
    truncated: int = 0  # how many examples lost tokens to max_length
    truncated_rows: list[int] = field(default_factory=list)  # which ones (indices into the examples)
    lengths: list[int] = field(default_factory=list)
    # Token-level tasks: `labels` holds one id per token, and batches pad them with this value
    # (-100: positions the loss ignores). None: one label per example.
    label_pad: int | None = None
    # Extractive QA: (start, end) token positions of the answer in each feature.
    spans: list[tuple[int, int]] | None = None


def inputs_of(features: Features, indices: Sequence[int]) -> Features:
    """The token ids (and types, lengths) of the chosen examples, in that order: what a model reads of them."""
    types = features.token_type_ids
    return Features(
        input_ids=[features.input_ids[i] for i in indices],
        token_type_ids=[types[i] for i in indices] if types else None,
        lengths=[features.lengths[i] for i in indices],
    )


def tokenize(tokenizer, examples: Sequence[Example], max_length: int, chunk: int = 4096) -> Features:
    """Tokenise examples (with their pairs) into unpadded ids.

    Args:
        tokenizer: a HF fast tokenizer.
        examples: texts (and optional pairs) to encode.
        max_length: longest allowed sequence, special tokens included.
        chunk: examples per tokenizer call (bounds memory on big files).

    Returns:
        Features with `input_ids`, `token_type_ids` (when the tokenizer makes them) and the
        number of truncated examples.
    """
    input_ids: list[list[int]] = []
    type_ids: list[list[int]] = []
    truncated = 0
    truncated_rows: list[int] = []
    for start in range(0, len(examples), chunk):
        part = examples[start : start + chunk]
        texts = [ex.text for ex in part]
        pairs = [ex.text_pair for ex in part] if part and part[0].text_pair is not None else None
        # Encode untruncated first: cheap with a fast tokenizer, and it tells exactly which
        # examples are too long. Only those are encoded again with truncation.
        enc = tokenizer(texts, pairs, truncation=False, add_special_tokens=True, verbose=False)
        too_long = [i for i, ids in enumerate(enc["input_ids"]) if len(ids) > max_length]
        if too_long:
            redo = tokenizer(
                [texts[i] for i in too_long],
                [pairs[i] for i in too_long] if pairs else None,
                truncation=True,
                max_length=max_length,
            )
            for j, i in enumerate(too_long):
                enc["input_ids"][i] = redo["input_ids"][j]
                if "token_type_ids" in enc:
                    enc["token_type_ids"][i] = redo["token_type_ids"][j]
            truncated += len(too_long)
            truncated_rows.extend(start + i for i in too_long)
        input_ids.extend(enc["input_ids"])
        if "token_type_ids" in enc:
            type_ids.extend(enc["token_type_ids"])
    return Features(
        input_ids=input_ids,
        token_type_ids=type_ids or None,
        truncated=truncated,
        truncated_rows=truncated_rows,
        lengths=[len(ids) for ids in input_ids],
    )
