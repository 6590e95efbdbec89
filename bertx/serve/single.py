"""One trained folder (PyTorch or an ONNX/OpenVINO export) as a served model: the kind `bertx serve DIR`
runs for a single-task folder."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from bertx.serve.batcher import MicroBatcher, TokenWeight
from bertx.serve.protocol import WARM_UP_TEXT, BadRequest, Limits, canonical_input, checked_list, pair_form, timed_warm_up


@dataclass
class ServedModel:
    """One model of the server: how to check a request's inputs and how to predict a batch of them."""

    name: str
    folder: str
    trained: Any  # bertx.inference.loading.TrainedModel
    batcher: MicroBatcher | None = None
    info: dict = field(default_factory=dict)
    counter: TokenWeight | None = None
    predictor: Any = None  # bertx.inference.records.RecordPredictor, made on first use

    @property
    def kind(self) -> str:
        return self.trained.task.name

    def check(self, inputs: Any, limits: Limits, tasks: Any = None, adapter: Any = None) -> list:
        """The request's inputs in one canonical form, or a `BadRequest` saying what is wrong."""
        if tasks is not None:
            raise BadRequest(422, f"`tasks` is for multi-task models; model {self.name!r} answers one task ({self.kind})")
        if adapter is not None:
            raise BadRequest(422, f"`adapter` is for a folder of adapters; model {self.name!r} is one model")
        from bertx.inference.predictor import reads_pairs

        pairs = reads_pairs(self.trained.task, self.trained.run)
        return [
            pair_form(i, canonical_input(i, item, self.kind), pairs, f"model {self.name!r}") for i, item in enumerate(checked_list(inputs, limits))
        ]

    def predict(self, inputs: list) -> list[dict]:
        """One batch through the model: the records `bertx predict` writes, in input order. Adapters that
        share one base model (and one tokenizer, whose Rust state is not safe to drive from two threads)
        take turns for the whole batch."""
        with getattr(self.trained.model, "lock", None) or nullcontext():
            return self._predict(inputs)

    def _predict(self, inputs: list) -> list[dict]:
        if self.predictor is None:
            from bertx.inference.records import predictor_for

            self.predictor = predictor_for(self.trained)
        return self.predictor.records(inputs)

    def weigh(self, item) -> int:
        """An input's cost for admission: the tokens the model reads of it."""
        if self.counter is None:
            self.counter = TokenWeight(self.trained.tokenizer, self.trained.data.max_length)
        return self.counter(item)

    def warm_up(self) -> float:
        return timed_warm_up(self, ("a warm-up question?", WARM_UP_TEXT) if self.kind == "qa" else (WARM_UP_TEXT, None))
