"""The serving floor every served kind stands on: the server's limits, the `Served` protocol, and what each
kind does with a request's inputs (check the list, put each input in one canonical form, refuse the form the
model was not trained on) and its timed warm-up that gives admission its first cost estimate.

A leaf: the served kinds import it, the app imports them, no module imports back up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bertx.serve.batcher import MicroBatcher


@dataclass
class Limits:
    max_batch_size: int = 32  # inputs per model call
    max_wait_ms: float = 5.0  # how long a lone input waits for company
    max_queue: int = 1024  # inputs waiting per model; beyond: 503 (a bound on memory)
    max_inputs: int = 64  # inputs per request
    max_body_bytes: int = 8 * 1024 * 1024  # a request body beyond: 413 (texts are otherwise truncated, never refused)
    deadline_ms: float = 2000.0  # a request whose expected queue wait is longer gets 503 + Retry-After at once


class Served(Protocol):
    """What the server asks of every served kind (`single.ServedModel`, `multitask.MultiTaskServed`,
    `adapter_bank.AdapterBankServed`): they import this leaf, the app imports them, nothing imports back up."""

    name: str
    info: dict  # what GET /v1/models says of it (never a filesystem path)
    batcher: MicroBatcher | None  # set when the app starts

    @property
    def kind(self) -> str: ...

    def check(self, inputs: Any, limits: Limits, tasks: Any = None, adapter: Any = None) -> list:
        """The request's inputs in canonical form, or a `BadRequest`."""
        ...

    def predict(self, inputs: list) -> list[dict]:
        """One batch of checked inputs -> one record per input, in order."""
        ...

    def weigh(self, item) -> int:
        """An input's cost for admission (tokens)."""
        ...

    def warm_up(self) -> float:
        """Run once and return the first estimate of the seconds a token costs."""
        ...


WARM_UP_TEXT = "a warm-up sentence of about the length of a short review, " * 4


def timed_warm_up(model, sample) -> float:
    """Run a served model once (first calls are slow), then time a batch of `sample`: the first estimate of the
    seconds an input token costs, which the batcher refines from every batch it runs."""
    model.predict([sample] * 2)
    batch = [sample] * 8
    started = time.perf_counter()
    model.predict(batch)
    return (time.perf_counter() - started) / sum(model.weigh(item) for item in batch)


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def checked_list(inputs: Any, limits: Any) -> list:
    """The request's `inputs` as a list, within `limits.max_inputs`, or a `BadRequest`."""
    if not isinstance(inputs, list):
        raise BadRequest(422, f"`inputs` must be a list, got {type(inputs).__name__}")
    if not inputs:
        raise BadRequest(422, "`inputs` is empty: send at least one input")
    if len(inputs) > limits.max_inputs:
        raise BadRequest(413, f"{len(inputs)} inputs in one request; the limit is {limits.max_inputs}")
    return inputs


def canonical_input(i: int, item: Any, kind: str):
    """One input as (text, pair or None), or (question, context) for QA; `BadRequest` names what is wrong."""

    def text(value: Any, what: str) -> str:
        if not isinstance(value, str):
            raise BadRequest(422, f"inputs[{i}]: {what} must be a string, got {type(value).__name__}")
        if not value.strip():
            raise BadRequest(422, f"inputs[{i}]: {what} is empty")
        try:  # JSON may carry lone surrogates (\ud800): valid JSON, but no tokenizer can encode them
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            raise BadRequest(422, f"inputs[{i}]: {what} holds an unpaired surrogate at character {err.start}; send valid Unicode text") from None
        return value

    if kind == "qa":
        if not isinstance(item, dict) or not {"question", "context"} <= set(item):
            raise BadRequest(422, f"inputs[{i}]: a QA input is an object with `question` and `context`")
        return (text(item["question"], "question"), text(item["context"], "context"))
    if isinstance(item, dict) and kind != "ner":
        if "text" not in item:
            raise BadRequest(422, f"inputs[{i}]: an object input needs `text` (and `text_pair` for pairs)")
        pair = item.get("text_pair")
        return (text(item["text"], "text"), None if pair is None else text(pair, "text_pair"))
    if isinstance(item, list) and kind != "ner":
        if len(item) != 2:
            raise BadRequest(422, f"inputs[{i}]: a text pair is a list of two strings")
        return (text(item[0], "text"), text(item[1], "text_pair"))
    return (text(item, "input"), None)


def pair_form(i: int, given: tuple, pairs: bool | None, who: str) -> tuple:
    """`given` (text, pair or None) when it has the form the model was trained on (`pairs`: True, False or
    None for either), else a `BadRequest`: a single-text model given a pair would read both as one text."""
    if pairs is True and given[1] is None:
        raise BadRequest(422, f'inputs[{i}]: {who} reads text pairs; send [text, text_pair] or {{"text", "text_pair"}}')
    if pairs is False and given[1] is not None:
        raise BadRequest(422, f"inputs[{i}]: {who} was trained on single texts; send one text per input, not a pair")
    return given
