"""Batches: length-bucketed order (near-zero padding), per-process slices, and dynamic padding.

Why buckets: on a CPU the cost of a step is proportional to the padded tokens. Sorting examples by
length inside buckets of `bucket_size` batches, then shuffling the order of the batches, keeps
padding near zero while each batch still mixes examples from across the epoch.

The order depends only on `(seed, epoch)`, so a resumed run replays exactly the same batches, and
each of N processes takes its own slice of every global batch (`rank::world`) so that the global
batch, and hence the optimisation, is the same on 1 or N processes.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch

from bertx.data.features import Features


def bucketed_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int, bucket_size: int = 64) -> list[list[int]]:
    """Global batches of example indices for one epoch.

    Args:
        lengths: token count of every example.
        batch_size: examples per global batch.
        seed, epoch: the order is a pure function of these.
        bucket_size: batches sorted together by length.

    Returns:
        A list of batches (lists of indices), the last one possibly shorter.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    span = batch_size * bucket_size
    batches: list[list[int]] = []
    for start in range(0, len(order), span):
        bucket = sorted(order[start : start + span], key=lambda i: lengths[i], reverse=True)
        batches.extend(bucket[i : i + batch_size] for i in range(0, len(bucket), batch_size))
    # A short batch is kept (no example is dropped); shuffle batch order so lengths mix over time.
    perm = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in perm]


# Inference batches are cut where an input would be padded to more than this many times its length. Sorted by
# length, a batch of 32 SST-2 sentences runs from about 60 tokens down to 8: padded to its longest, most of its
# tokens are padding. Cut at twice, the same batch runs as two or three model calls of similar lengths.
MAX_PADDING = 2.0


def sorted_batches(lengths: Sequence[int], batch_size: int, max_padding: float | None = MAX_PADDING) -> list[list[int]]:
    """Evaluation/prediction batches: sorted by length, so padding is minimal; at most `batch_size` examples
    each, and a new batch wherever an example would be padded to more than `max_padding` times its length
    (None: batches of `batch_size` only)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < batch_size and (max_padding is None or max_padding * lengths[i] >= lengths[batches[-1][0]]):
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def shard(batch: list[int], rank: int, world: int) -> list[int]:
    """This process's part of a global batch."""
    return batch[rank::world]


def micro_batches(indices: list[int], parts: int) -> Iterator[list[int]]:
    """Split a process's slice into `parts` gradient-accumulation micro-batches."""
    size = -(-len(indices) // parts)
    for start in range(0, len(indices), size):
        yield indices[start : start + size]


def collate(features: Features, indices: list[int], pad_id: int, label_dtype: torch.dtype | None = None) -> dict:
    """Pad the chosen examples to the longest of them and build tensors."""
    longest = max(features.lengths[i] for i in indices)
    ids = torch.full((len(indices), longest), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(indices), longest), dtype=torch.long)  # (B, T)
    types = torch.zeros((len(indices), longest), dtype=torch.long) if features.token_type_ids else None
    for row, i in enumerate(indices):
        n = features.lengths[i]
        ids[row, :n] = torch.tensor(features.input_ids[i])
        mask[row, :n] = 1
        if types is not None:
            types[row, :n] = torch.tensor(features.token_type_ids[i])
    batch = {"input_ids": ids, "attention_mask": mask}
    if types is not None:
        batch["token_type_ids"] = types
    if features.labels is not None and label_dtype is not None:
        if features.label_pad is None:
            batch["labels"] = torch.tensor([features.labels[i] for i in indices], dtype=label_dtype)
        else:
            labels = torch.full((len(indices), longest), features.label_pad, dtype=label_dtype)  # (B, T)
            for row, i in enumerate(indices):
                labels[row, : features.lengths[i]] = torch.tensor(features.labels[i])
            batch["labels"] = labels
    if features.spans is not None and label_dtype is not None:
        batch["start_positions"] = torch.tensor([features.spans[i][0] for i in indices])  # (B,)
        batch["end_positions"] = torch.tensor([features.spans[i][1] for i in indices])  # (B,)
    return batch
