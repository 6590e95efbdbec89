"""The distillation teacher's outputs on a Ray cluster, the same cache the single-process path computes.

The driver cuts the transfer set into the length-sorted batches one process would run (`sorted_batches`),
hands whole runs of consecutive batches to a pool of actors (one teacher load each) through Ray Data, and
puts each run's outputs back at its examples' places. Every batch holds the same examples, padded to the
same length, as in one process, so the outputs agree with the local cache to the last bits the kernels'
thread count allows, and the argmax (the hard label) is the same.

Outputs travel as the teacher store's NumPy bytes (`teacher_store.pack`, no pickle).
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from bertx.data.batching import sorted_batches
from bertx.data.features import Features, inputs_of
from bertx.scale.cluster import connected, split_cores
from bertx.training.teacher_store import pack, unpack

BATCHES_PER_TASK = 16  # one task: 16 batches of 128, about 2,000 texts (seconds of work, little driver traffic)


class TeacherWorker:
    """A Ray actor: the teacher loaded once; each call labels one run of batches."""

    def __init__(self, teacher: str, features: Features, pad_id: int, per_token_keys: Optional[tuple], batch_size: int, bf16: bool, threads: int):
        import torch

        from bertx.inference.loading import load_trained
        from bertx.models.cls_only import disable_cls_only_last_layer
        from bertx.scale.shard_worker import set_threads

        set_threads(threads)
        self.model = load_trained(teacher, device="cpu").model
        disable_cls_only_last_layer(self.model)  # as the distillation recipe runs its teacher
        self.features, self.pad_id, self.keys, self.batch_size = features, pad_id, per_token_keys, batch_size
        self.autocast = torch.bfloat16 if bf16 else None

    def __call__(self, batch: dict) -> dict:
        from bertx.models.batched_outputs import model_outputs, token_outputs

        blobs = []
        for indices in batch["indices"]:
            part = inputs_of(self.features, [int(i) for i in indices])
            if self.keys is None:
                found = model_outputs(self.model, part, self.pad_id, self.batch_size, "cpu", self.autocast)
            else:
                found = token_outputs(self.model, part, self.pad_id, self.keys, self.batch_size, "cpu", self.autocast)
            blobs.append(pack(found, self.keys, part.lengths))
        return {"task": batch["task"], "outputs": blobs}


def label_on_ray(
    teacher: str,
    features: Features,
    pad_id: int,
    per_token_keys: Optional[tuple] = None,
    batch_size: int = 128,
    bf16: bool = False,
    address: Optional[str] = None,
    workers: Optional[int] = None,
    log: Callable[[str], None] = lambda line: None,
):
    """The teacher's outputs for every example, in input order: an (N, C) array, or for per-token heads a dict
    of per-example (T_i, ...) arrays (what `model_outputs` / `token_outputs` return in one process)."""
    batches = sorted_batches(features.lengths, batch_size)
    tasks = [sum(batches[k : k + BATCHES_PER_TASK], []) for k in range(0, len(batches), BATCHES_PER_TASK)]
    if not tasks:
        return np.zeros((0, 1), dtype=np.float32) if per_token_keys is None else {k: [] for k in per_token_keys}
    with connected(address) as cpus:
        import ray.data

        pool = split_cores(cpus, workers)
        log(f"labelling {len(features.lengths):,} texts on Ray: {pool.workers} workers x {pool.threads} thread(s)")
        items = ray.data.from_items([{"task": k, "indices": indices} for k, indices in enumerate(tasks)], override_num_blocks=len(tasks))
        results = items.map_batches(
            TeacherWorker,
            batch_size=1,
            num_cpus=pool.threads,
            compute=ray.data.ActorPoolStrategy(size=min(pool.workers, len(tasks)), max_tasks_in_flight_per_actor=1),
            fn_constructor_kwargs={
                "teacher": str(teacher),
                "features": features,
                "pad_id": pad_id,
                "per_token_keys": per_token_keys,
                "batch_size": batch_size,
                "bf16": bf16,
                "threads": pool.threads,
            },
        )
        rows: Optional[np.ndarray] = None
        per_token = {k: [None] * len(features.lengths) for k in per_token_keys or ()}
        for item in results.iter_rows():
            indices = tasks[int(item["task"])]
            values = unpack(item["outputs"], per_token_keys)
            if per_token_keys is None:
                if rows is None:
                    rows = np.empty((len(features.lengths), values.shape[-1]), dtype=np.float32)
                rows[indices] = values
            else:
                for key in per_token_keys:
                    for i, found in zip(indices, values[key]):
                        per_token[key][i] = found
    return rows if per_token_keys is None else per_token
