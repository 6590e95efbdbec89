"""Dynamic micro-batching: concurrent requests for one model become one batch, answered individually.

Each request's inputs wait in a bounded queue. One worker per model takes what is waiting (up to
`max_batch_size` inputs, waiting at most `max_wait_ms` for more once the first arrives), runs the
model once in a worker thread, off the event loop, and hands every request its slice of the results.
The predictor itself sorts the batch by length, so padding stays small. A full queue refuses at once
(`QueueFull`): memory never grows without bound, and the client is told to retry.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Optional


class QueueFull(Exception):
    """The model's queue holds `max_queue` inputs already."""


@dataclass
class _Job:
    inputs: list
    future: asyncio.Future
    queued_at: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Gathers the inputs of concurrent requests for one model into batches.

    Args:
        run_batch: the model call, `inputs -> one result per input` (runs in a worker thread).
        max_batch_size: most inputs per model call.
        max_wait_ms: how long the first input of a batch waits for others.
        max_queue: most inputs waiting; beyond it `submit` raises `QueueFull`.
        on_batch: called with each batch's size (for metrics).
        arriving: how many requests are received but not yet queued; when none are, a batch runs at once
            instead of waiting (a lone request pays no wait).
    """

    def __init__(self, run_batch: Callable[[list], list], max_batch_size: int = 32, max_wait_ms: float = 5.0,
                 max_queue: int = 1024, on_batch: Optional[Callable[[int], None]] = None,
                 arriving: Optional[Callable[[], int]] = None):
        self.run_batch = run_batch
        # How many requests are on their way to this batcher (received, not yet queued): waiting for
        # company only makes sense when some are. Without it, the first input always waits max_wait_ms.
        self.arriving = arriving
        self.max_batch_size, self.max_wait = max_batch_size, max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.on_batch = on_batch or (lambda size: None)
        self.waiting: list[_Job] = []
        self.queued_inputs = 0
        self._wake: Optional[asyncio.Event] = None
        self._worker: Optional[asyncio.Task] = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bertx-model")
        self._closing = False

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._worker = asyncio.get_running_loop().create_task(self._run())

    async def submit(self, inputs: list) -> list:
        """Queue a request's inputs; return its results once its batch has run."""
        if self._closing:
            raise QueueFull("the server is shutting down")
        if self.queued_inputs + len(inputs) > self.max_queue:
            raise QueueFull(f"{self.queued_inputs} inputs are waiting (limit {self.max_queue})")
        job = _Job(inputs, asyncio.get_running_loop().create_future())
        self.waiting.append(job)
        self.queued_inputs += len(inputs)
        self._wake.set()
        return await job.future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.waiting:
                first = self.waiting[0]
                # Wait for company only while the batch has room and the first input's wait allows it.
                while sum(len(j.inputs) for j in self.waiting) < self.max_batch_size:
                    remaining = self.max_wait - (time.perf_counter() - first.queued_at)
                    if remaining <= 0 or (self.arriving is not None and self.arriving() <= 0):
                        break
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), remaining)
                    except asyncio.TimeoutError:
                        break
                jobs, size = [], 0
                while self.waiting and (not jobs or size + len(self.waiting[0].inputs) <= self.max_batch_size):
                    job = self.waiting.pop(0)
                    jobs.append(job)
                    size += len(job.inputs)
                self.queued_inputs -= size
                inputs = [item for job in jobs for item in job.inputs]
                self.on_batch(len(inputs))
                try:
                    results = await loop.run_in_executor(self._executor, self.run_batch, inputs)
                except Exception as err:  # the model failed: every request of the batch gets the error
                    for job in jobs:
                        if not job.future.done():
                            job.future.set_exception(err)
                    continue
                start = 0
                for job in jobs:
                    if not job.future.done():
                        job.future.set_result(results[start:start + len(job.inputs)])
                    start += len(job.inputs)

    async def close(self) -> None:
        """Refuse new work, let what is queued finish, stop the worker."""
        self._closing = True
        while self.waiting:
            await asyncio.sleep(0.005)
        if self._worker is not None:
            self._worker.cancel()
        self._executor.shutdown(wait=True)

    def depth(self) -> int:
        return self.queued_inputs

