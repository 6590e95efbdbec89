"""What every served model does with a request's inputs, whatever it serves (one model, a bank of adapters,
a multi-task model): check the list, put each input in one canonical form, refuse the form the model was
not trained on, and a timed warm-up that gives admission its first cost estimate.

The served kinds (`server.ServedModel`, `adapter_bank.AdapterBankServed`, `multitask_served.MultiTaskServed`)
import these from here, and the server imports the served kinds: no module imports back up.
"""

from __future__ import annotations

import time
from typing import Any


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
