"""Length-bucketed batches: every example exactly once, deterministic, little padding, fair shards."""

import random

import torch

from bertx.data.batching import bucketed_batches, collate, micro_batches, shard, sorted_batches
from bertx.data.features import Features


def test_each_example_once_and_deterministic():
    lengths = [random.Random(i).randint(3, 60) for i in range(1000)]
    batches = bucketed_batches(lengths, 32, seed=1, epoch=0, bucket_size=8)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(1000))
    assert batches == bucketed_batches(lengths, 32, seed=1, epoch=0, bucket_size=8)
    assert batches != bucketed_batches(lengths, 32, seed=1, epoch=1, bucket_size=8)


def test_buckets_cut_padding():
    lengths = [random.Random(i).randint(3, 60) for i in range(2000)]
    real = sum(lengths)

    def padded(batches):
        return sum(max(lengths[i] for i in b) * len(b) for b in batches)

    plain = [list(range(i, min(i + 32, 2000))) for i in range(0, 2000, 32)]
    bucketed = bucketed_batches(lengths, 32, seed=0, epoch=0, bucket_size=16)
    assert padded(bucketed) < 1.1 * real < padded(plain)


def test_shards_and_micro_batches_partition_a_batch():
    batch = list(range(10))
    parts = [shard(batch, r, 3) for r in range(3)]
    assert sorted(i for p in parts for i in p) == batch
    assert [len(m) for m in micro_batches(list(range(7)), 2)] == [4, 3]


def test_sorted_batches_and_collate():
    features = Features(input_ids=[[2, 5, 3], [2, 3], [2, 6, 7, 3]], token_type_ids=None, labels=[1, 0, 1], lengths=[3, 2, 4])
    assert sorted_batches(features.lengths, 2) == [[2, 0], [1]]
    batch = collate(features, [1, 2], pad_id=0, label_dtype=torch.long)
    assert batch["input_ids"].tolist() == [[2, 3, 0, 0], [2, 6, 7, 3]]
    assert batch["attention_mask"].tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert batch["labels"].tolist() == [0, 1] and "token_type_ids" not in batch


def test_sorted_batches_pad_no_input_beyond_twice_its_length():
    lengths = [128] * 40 + [60, 50, 40, 31, 30, 20, 16, 15, 8]
    batches = sorted_batches(lengths, 32)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))  # every example once
    assert all(2 * lengths[i] >= lengths[b[0]] for b in batches for i in b)  # padded to at most twice its length
    assert [len(b) for b in batches] == [32, 8, 5, 3, 1]  # 128s fill batches of 32; then 60-30, 20-15, 8
    assert [len(b) for b in sorted_batches(lengths, 32, max_padding=None)] == [32, 17]
