"""A multi-task folder served as one model: every requested head answered from one encoder pass per batch.

    POST /v1/models/glue/predict {"inputs": ["a fine film"], "tasks": ["sst2", "cola"]}
    -> {"outputs": [{"text": "a fine film", "tasks": {"sst2": {"label", "probs"}, "cola": {...}}}]}

Without `tasks`, an input gets every head that reads its form: single texts the single-text heads, pairs
(`[a, b]` or `{"text", "text_pair"}`) the pair heads. The micro-batcher mixes requests freely: a batch
runs the union of its requests' tasks once per input form, and each input keeps the tasks it asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bertx.serve.batcher import MicroBatcher, TokenWeight
from bertx.serve.protocol import BadRequest, WARM_UP_TEXT, canonical_input, checked_list, timed_warm_up


@dataclass
class MultiTaskServed:
    name: str
    folder: str
    predictor: Any  # bertx.inference.multitask_predictor.MultiTaskPredictor
    batcher: MicroBatcher | None = None
    info: dict = field(default_factory=dict)
    counter: TokenWeight | None = None

    kind = "multitask"

    @classmethod
    def load(cls, name: str, folder: str) -> "MultiTaskServed":
        from bertx.inference.multitask_predictor import MultiTaskPredictor

        predictor = MultiTaskPredictor.load(folder)
        tasks = {
            t: {
                "task": h.spec.name,
                "labels": h.labels if h.spec.label_kind != "score" else [],
                "reads": "pairs" if h.pairs else "texts",
                "max_length": h.max_length,
            }
            for t, h in predictor.heads.items()
        }
        info = {"name": name, "task": "multitask", "tasks": tasks, "runtime": "onnx" if predictor.onnx else "pytorch", "one_encoder_pass": True}
        if predictor.skipped:
            info["not_served"] = predictor.skipped  # token and span heads: serve their exports
        return cls(name, folder, predictor, info=info)

    def check(self, inputs: Any, limits, tasks: Any = None, adapter: Any = None) -> list:
        """Each input as (text, pair or None, the tasks it asks for)."""
        if adapter is not None:
            raise BadRequest(422, f"`adapter` is for a folder of adapters; model {self.name!r} is a multi-task model")
        heads = self.predictor.heads
        if tasks is not None:
            if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks):
                raise BadRequest(422, "`tasks` must be a non-empty list of task names")
            unknown = [t for t in tasks if t not in heads]
            if unknown:
                raise BadRequest(422, f"no task {unknown[0]!r} in model {self.name!r}; tasks: {', '.join(heads)}")
            tasks = list(dict.fromkeys(tasks))
        items = []
        for i, item in enumerate(checked_list(inputs, limits)):
            text, pair = canonical_input(i, item, "classification")  # a text, `[a, b]` or `{"text", "text_pair"}`
            wanted = tasks or self.predictor.tasks_for(pair is not None)
            wrong = [t for t in wanted if heads[t].pairs != (pair is not None)]
            if wrong:
                form = "a text pair" if heads[wrong[0]].pairs else "a single text"
                raise BadRequest(422, f"inputs[{i}]: task {wrong[0]!r} reads {form}")
            if not wanted:
                raise BadRequest(422, f"inputs[{i}]: no task of model {self.name!r} reads {'pairs' if pair else 'single texts'}")
            items.append((text, pair, tuple(wanted)))
        return items

    def predict(self, items: list) -> list[dict]:
        """One batch: per input form, one pass for the union of the tasks asked; each input keeps its own."""
        out: list = [None] * len(items)
        for with_pairs in (False, True):
            group = [i for i, item in enumerate(items) if (item[1] is not None) == with_pairs]
            if not group:
                continue
            union = list(dict.fromkeys(t for i in group for t in items[i][2]))
            answers = self.predictor.predict([items[i][0] for i in group], [items[i][1] for i in group] if with_pairs else None, union)
            for i, answer in zip(group, answers):
                text, pair, wanted = items[i]
                out[i] = {"text": text, **({"text_pair": pair} if pair is not None else {}), "tasks": {t: answer[t] for t in wanted}}
        return out

    def weigh(self, item) -> int:
        if self.counter is None:
            self.counter = TokenWeight(self.predictor.tokenizer, max(h.max_length for h in self.predictor.heads.values()))
        return self.counter(item)

    def warm_up(self) -> float:
        pairs = not self.predictor.tasks_for(False)  # a model of pair heads only warms up on pairs
        return timed_warm_up(self, (WARM_UP_TEXT, WARM_UP_TEXT if pairs else None, tuple(self.predictor.tasks_for(pairs))))
