"""Dynamic micro-batching: concurrent requests for one model become one batch, answered individually.

Each request's inputs wait in a queue. One worker per model takes what is waiting (up to
`max_batch_size` inputs, waiting at most `max_wait_ms` for more once the first arrives), runs the
model once in a worker thread, off the event loop, and hands every request its slice of the results.
The predictor itself sorts the batch by length, so padding stays small.

Two guarantees beyond speed:
- **Admission by expected answer time.** An input's cost is its tokens after truncation (`TokenWeight`: a
  500-word review costs what the model reads of it, `max_length` tokens, not its characters). The worker
  fits a batch's seconds as a fixed part plus a part per token on recent batches, adds the slack it measures
  between predicted and real answer times (the event loop, HTTP, a busy machine: a 95th percentile, in
  seconds, so it does not scale long inputs' predictions), and refuses a request at once (`QueueFull`, with
  the time until it would fit as the retry hint) only when the work ahead of it and its own would answer it
  later than the deadline. A count of queued inputs alone does not bound latency: 1,024 short tweets and
  1,024 long reviews wait very different times. `max_queue` stays as a hard bound on memory.
- **One bad request harms no one.** If a batch fails, each of its requests is run again on its own, so
  only the request that fails alone gets the error; the others get their results.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Optional

# What an input costs besides its tokens (the request's own parsing, decoding, its record), in tokens.
INPUT_OVERHEAD_TOKENS = 8
# Characters that hold at least a token in text of words (English averages 4-5): an input this much longer
# than the model reads is read to `max_length` tokens, known without counting, so a megabyte-long input costs
# the event loop nothing. Counting was its largest cost under a load of reviews (33 of 71 profile samples).
CHARS_PER_TOKEN_AT_LEAST = 6


class QueueFull(Exception):
    """The model cannot take the request now: its queue is full, or the request would wait too long."""

    def __init__(self, message: str, retry_after_s: float = 1.0):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class TokenWeight:
    """An input's cost for admission: the tokens the model will read of it (after truncation at
    `max_length`), plus a fixed overhead. Counted by a private copy of the model's tokenizer: the served
    model's own is driven by the model thread, and a Rust tokenizer is not safe to share between threads.

    Called with an input as the served model checks it: a text, or a tuple whose first two items are texts
    (text and pair, question and context) or None."""

    def __init__(self, tokenizer, max_length: int):
        from tokenizers import Tokenizer

        self.max_length = max_length
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self.tokenizer = Tokenizer.from_str(backend.to_str()) if backend is not None else None
        if self.tokenizer is not None:
            self.tokenizer.no_truncation()
            self.tokenizer.no_padding()

    def __call__(self, item) -> int:
        text, pair = (item[0], item[1]) if isinstance(item, (tuple, list)) else (item, None)
        if not isinstance(text, str):
            return INPUT_OVERHEAD_TOKENS
        pair = pair if isinstance(pair, str) else None
        chars = len(text) + len(pair or "")
        if chars >= CHARS_PER_TOKEN_AT_LEAST * self.max_length:  # the model reads max_length of it: not counted
            return INPUT_OVERHEAD_TOKENS + self.max_length
        if self.tokenizer is None:  # a slow tokenizer: about 4 characters a token
            tokens = chars // 4 + 3
        else:
            tokens = len(self.tokenizer.encode(text, pair).ids)
        return INPUT_OVERHEAD_TOKENS + min(tokens, self.max_length)


@dataclass
class _Job:
    inputs: list
    future: asyncio.Future
    weight: int = 0
    predicted: float = 0.0  # the wait the cost model expected for it, before the slack (seconds)
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
        deadline_ms: the longest a request may expect to wait for its answer (the work queued ahead of it, and
            its own); beyond it, `QueueFull` at once. A request that finds the model idle is always taken.
        seconds_per_token: the first estimate of an input's cost (the server measures it at warm-up).
        weigh: an input's cost in tokens (the server's `TokenWeight`; default: one unit per input).
    """

    def __init__(
        self,
        run_batch: Callable[[list], list],
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 1024,
        on_batch: Optional[Callable[[int], None]] = None,
        arriving: Optional[Callable[[], int]] = None,
        deadline_ms: float = 2000.0,
        seconds_per_token: float = 1e-4,
        weigh: Callable = lambda item: 1,
    ):
        self.run_batch = run_batch
        # How many requests are on their way to this batcher (received, not yet queued): waiting for
        # company only makes sense when some are. Without it, the first input always waits max_wait_ms.
        self.arriving = arriving
        self.max_batch_size, self.max_wait = max_batch_size, max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.deadline = deadline_ms / 1000.0
        self.seconds_per_token = seconds_per_token
        # A batch costs a fixed part (the call, padding, decoding) plus a part per token. Fitted on recent
        # batches: learning from tokens alone, a run of one-input batches (a quiet server) made each token look
        # several times dearer than in a full batch, and the first burst of concurrent requests was then
        # refused as if it would take seconds.
        self.seconds_per_batch = 0.0
        self.batches: deque[tuple[int, float]] = deque(maxlen=64)  # (weight, seconds) of recent batches
        # Real answer times minus predicted ones: what the cost model misses (the event loop's own work, HTTP,
        # batches that mix requests, a busy machine). Predictions add the 95th percentile of the recent
        # differences, so that nearly every accepted request meets the deadline. A difference, not a ratio:
        # a ratio learned on short sentences, where the fixed overheads dominate, multiplied the predictions
        # for long reviews up to 4x and refused 93% of a load it answered in a quarter of the deadline.
        self.slips: deque[float] = deque(maxlen=200)
        self.slack = 0.0
        self.weigh = weigh
        self.on_batch = on_batch or (lambda size: None)
        self.waiting: list[_Job] = []
        self.queued_inputs = 0
        self.queued_weight = 0
        self.running_weight = 0  # the batch in the model now: it finishes before anything queued starts
        self.running_until = 0.0  # when the cost model expects it to finish (perf_counter seconds)
        self._wake: Optional[asyncio.Event] = None
        self._worker: Optional[asyncio.Task] = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bertx-model")
        self._closing = False

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._worker = asyncio.get_running_loop().create_task(self._run())

    def expected_wait(self, weight: int = 0, inputs: int = 1) -> float:
        """Seconds until a request of `weight` arriving now would be answered: the batch in the model, the
        work queued ahead, its own, and the measured slack."""
        return self._model_wait(weight, inputs) + self.slack

    def _model_wait(self, weight: int = 0, inputs: int = 1) -> float:
        """The cost model's seconds until the batch a request would join has run: what is left of the batch
        in the model, the batches queued ahead, and its own batch, including the requests already on their
        way that will share it (an answer comes when its whole batch is done)."""
        ahead = self.queued_inputs + inputs
        batches = -(-ahead // self.max_batch_size)
        arriving = self.arriving() if self.arriving is not None else 0
        company = min(batches * self.max_batch_size - ahead, max(0, arriving))
        tokens = self.queued_weight + weight
        tokens += company * tokens / ahead if ahead else 0
        running = max(0.0, self.running_until - time.perf_counter()) if self.running_weight else 0.0
        return running + batches * self.seconds_per_batch + tokens * self.seconds_per_token

    def check_admission(self, weight: int = 0) -> None:
        """Raise `QueueFull` when a request of `weight` would be answered later than the deadline. Cheap:
        the server asks it (with weight 0) before it even parses a request's body."""
        if self._closing:
            raise QueueFull("the server is shutting down")
        busy = self.queued_weight + self.running_weight > 0
        wait = self.expected_wait(weight)
        if busy and wait > self.deadline:
            # Come back when the work ahead has drained enough for this request to fit in the deadline.
            raise QueueFull(f"the work queued ahead would answer it in {wait:.1f}s (deadline {self.deadline:g}s)", wait - self.deadline)

    async def submit(self, inputs: list) -> list:
        """Queue a request's inputs; return its results once its batch has run."""
        if self.queued_inputs + len(inputs) > self.max_queue:
            raise QueueFull(f"{self.queued_inputs} inputs are waiting (limit {self.max_queue})", self.expected_wait())
        weight = sum(self.weigh(i) for i in inputs)
        self.check_admission(weight)
        job = _Job(inputs, asyncio.get_running_loop().create_future(), weight, self._model_wait(weight, len(inputs)))
        self.waiting.append(job)
        self.queued_inputs += len(inputs)
        self.queued_weight += job.weight
        self._wake.set()
        return await job.future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.waiting:
                await self._gather()
                jobs, size = [], 0
                while self.waiting and (not jobs or size + len(self.waiting[0].inputs) <= self.max_batch_size):
                    job = self.waiting.pop(0)
                    jobs.append(job)
                    size += len(job.inputs)
                weight = sum(job.weight for job in jobs)
                self.queued_inputs -= size
                self.queued_weight -= weight
                self.running_weight = weight
                self.running_until = time.perf_counter() + self.seconds_per_batch + weight * self.seconds_per_token
                self.on_batch(size)
                try:
                    await self._answer(jobs, weight)
                finally:
                    self.running_weight = 0

    async def _gather(self) -> None:
        """Wait for company only while the batch has room and the first input's wait allows it."""
        first = self.waiting[0]
        while sum(len(j.inputs) for j in self.waiting) < self.max_batch_size:
            remaining = self.max_wait - (time.perf_counter() - first.queued_at)
            if remaining <= 0 or (self.arriving is not None and self.arriving() <= 0):
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except asyncio.TimeoutError:
                break

    async def _answer(self, jobs: list[_Job], weight: int) -> None:
        loop = asyncio.get_running_loop()
        inputs = [item for job in jobs for item in job.inputs]
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._executor, self.run_batch, inputs)
        except Exception as err:
            if len(jobs) == 1:
                _settle(jobs[0], error=err)
                return
            # Someone's request broke the batch: run each request alone, so only that one fails.
            for job in jobs:
                try:
                    _settle(job, await loop.run_in_executor(self._executor, self.run_batch, job.inputs))
                except Exception as alone:
                    _settle(job, error=alone)
            return
        finished = time.perf_counter()
        self._measured(finished - started, weight)
        for job in jobs:
            self._learn_slip(finished - job.queued_at - job.predicted)
        start = 0
        for job in jobs:
            _settle(job, results[start : start + len(job.inputs)])
            start += len(job.inputs)

    def _learn_slip(self, slip: float) -> None:
        """One answer's real wait minus the cost model's prediction: the slack is their 95th percentile."""
        self.slips.append(slip)
        if len(self.slips) >= 20:
            ordered = sorted(self.slips)
            self.slack = min(self.deadline, max(0.0, ordered[int(0.95 * (len(ordered) - 1))]))

    def _measured(self, seconds: float, weight: int) -> None:
        """Update the cost model from one batch: seconds = per batch + per token x weight, a least-squares
        line through the recent batches (it follows load and text lengths); a moving average of seconds per
        token until the batches differ enough in size to fit a line."""
        if weight <= 0:
            return
        self.batches.append((weight, seconds))
        weights = [w for w, _ in self.batches]
        mean_w = sum(weights) / len(weights)
        spread = sum((w - mean_w) ** 2 for w in weights) / len(weights)
        if len(self.batches) >= 8 and spread > (0.25 * mean_w) ** 2:
            mean_s = sum(t for _, t in self.batches) / len(self.batches)
            slope = sum((w - mean_w) * (t - mean_s) for w, t in self.batches) / len(self.batches) / spread
            if slope > 0:
                self.seconds_per_token = slope
                self.seconds_per_batch = max(0.0, mean_s - slope * mean_w)
                return
        self.seconds_per_token = 0.7 * self.seconds_per_token + 0.3 * max(0.0, seconds - self.seconds_per_batch) / weight

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


def _settle(job: _Job, results: list | None = None, error: Exception | None = None) -> None:
    if job.future.done():  # the client went away
        return
    if error is not None:
        job.future.set_exception(error)
    else:
        job.future.set_result(results)
