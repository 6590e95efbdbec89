"""Masked-LM batches: instances -> [CLS] A [SEP] (B [SEP]) tensors -> BERT's 80/10/10 masking.

Masking picks each token (or, with whole-word masking, each word: a word-start piece and the
`##` pieces that continue it) with probability `mlm_probability`; of the picked tokens 80% become
[MASK], 10% a random token and 10% stay, and only they carry a label (-100 elsewhere). Special
tokens and padding are never picked. Everything is vectorised over the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bertx.errors import BertxError


def id_space(tokenizer) -> int:
    """Ids the tokenizer can produce: one past its largest (a vocabulary may have holes)."""
    return max(len(tokenizer), max(tokenizer.get_vocab().values()) + 1)


@dataclass
class MaskingSpec:
    """What masking needs to know about the vocabulary."""

    mask_id: int
    cls_id: int
    sep_id: int
    pad_id: int
    continuation: torch.Tensor  # (vocab,) bool: the piece continues a word ("##ing")
    special: torch.Tensor  # (vocab,) bool: never masked, never a random replacement
    mlm_probability: float = 0.15
    whole_word: bool = True

    @classmethod
    def from_tokenizer(cls, tokenizer, mlm_probability: float = 0.15, whole_word: bool = True, source: str = "tokenizer") -> "MaskingSpec":
        vocab = tokenizer.get_vocab()
        missing = [
            name
            for name in ("mask_token", "cls_token", "sep_token", "pad_token")
            if getattr(tokenizer, name, None) is None or getattr(tokenizer, name) not in vocab
        ]
        if missing:
            tokens = ", ".join(name.replace("_token", "").upper() for name in missing)
            raise BertxError(f"{source}: the vocabulary has no {tokens} token; masked-LM pretraining needs [MASK], [CLS], [SEP] and [PAD]")
        size = id_space(tokenizer)
        continuation = torch.zeros(size, dtype=torch.bool)
        special = torch.zeros(size, dtype=torch.bool)
        prefix = getattr(getattr(tokenizer.backend_tokenizer, "model", None), "continuing_subword_prefix", None) or "##"
        for piece, index in vocab.items():
            continuation[index] = piece.startswith(prefix) and len(piece) > len(prefix)
        for index in tokenizer.all_special_ids:
            special[index] = True
        return cls(
            tokenizer.mask_token_id,
            tokenizer.cls_token_id,
            tokenizer.sep_token_id,
            tokenizer.pad_token_id,
            continuation,
            special,
            mlm_probability,
            whole_word,
        )


def assemble(tokens: np.ndarray, rows: np.ndarray, spec: MaskingSpec) -> dict[str, torch.Tensor]:
    """Input tensors for instance rows `(a_start, a_end, b_start, b_end, label)`, padded to the longest."""
    sequences, types = [], []
    for a0, a1, b0, b1, _ in rows.tolist():
        ids = [spec.cls_id, *tokens[a0:a1].tolist(), spec.sep_id]
        segment = [0] * len(ids)
        if b1 > b0:
            ids += [*tokens[b0:b1].tolist(), spec.sep_id]
            segment += [1] * (b1 - b0 + 1)
        sequences.append(ids)
        types.append(segment)
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), spec.pad_id, dtype=torch.long)
    token_type_ids = torch.zeros((len(sequences), width), dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, (ids, segment) in enumerate(zip(sequences, types)):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        token_type_ids[i, : len(ids)] = torch.tensor(segment)
        attention_mask[i, : len(ids)] = 1
    batch = {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask}
    labels = rows[:, 4]
    if (labels >= 0).any():
        batch["next_sentence_label"] = torch.as_tensor(labels, dtype=torch.long)
    return batch


def mask_tokens(input_ids: torch.Tensor, spec: MaskingSpec, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking of a (B, T) batch.

    Returns:
        (masked input_ids, labels): labels hold the original id at picked positions, -100 elsewhere.
    """
    B, T = input_ids.shape
    special = spec.special[input_ids]  # (B, T)
    draw = torch.rand((B, T), generator=generator)
    if spec.whole_word:
        # A word starts at every piece that is not a continuation; each piece takes its word's draw.
        starts = ~spec.continuation[input_ids] | special
        position = torch.arange(T).expand(B, T)
        word_start = torch.cummax(torch.where(starts, position, torch.zeros_like(position)), dim=1).values  # (B, T)
        draw = draw.gather(1, word_start)
    picked = (draw < spec.mlm_probability) & ~special
    if not picked.any():  # a tiny batch drew nothing: pick one real token so the loss is defined
        candidates = (~special).nonzero()
        if len(candidates):
            row, col = candidates[torch.randint(len(candidates), (1,), generator=generator)][0]
            picked[row, col] = True
    labels = torch.where(picked, input_ids, torch.full_like(input_ids, -100))
    action = torch.rand((B, T), generator=generator)
    masked = input_ids.clone()
    masked[picked & (action < 0.8)] = spec.mask_id
    randomise = picked & (action >= 0.8) & (action < 0.9)
    if randomise.any():
        choices = (~spec.special).nonzero().squeeze(1)  # replacements come from ordinary tokens only
        masked[randomise] = choices[torch.randint(len(choices), (int(randomise.sum()),), generator=generator)]
    return masked, labels


def mlm_batch(tokens: np.ndarray, rows: np.ndarray, spec: MaskingSpec, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    batch = assemble(tokens, rows, spec)
    batch["input_ids"], batch["labels"] = mask_tokens(batch["input_ids"], spec, generator)
    return batch
