"""Several teachers of one task labelling the transfer set as one (multi-teacher distillation).

    teacher, teachers... -> each checked to read the same labels with the same tokenizer -> each labels every
    part of the transfer set (its own store entries, its own choice of the fastest agreeing arithmetic)
    -> the parts averaged as probabilities with the ensemble's weights (`teacher_cache.ensemble`), and the
    average stored once more under a key of every member and the weights

An ensemble's soft targets are usually better calibrated and more accurate than any member's, and a student
can learn more from them than from its best teacher (Hinton et al. 2015; TextBrewer's MultiTeacherDistiller).
Teachers teach through their outputs only: hidden-state and attention losses need one teacher's internals.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

from bertx.config import DistillConfig
from bertx.data.features import Features
from bertx.errors import BertxError
from bertx.recipes.teacher_labels import TeacherLabeller
from bertx.training import teacher_store
from bertx.training.teacher_cache import TeacherCache, ensemble


def check_members(paths: list[str], members: list) -> None:
    """Every teacher answers the first one's task with its labels, in its order, reading its word pieces."""
    first = members[0]
    for path, member in zip(paths[1:], members[1:]):
        if member.task.label_kind != first.task.label_kind:
            raise BertxError(f"{path}: a {member.task.name} teacher; the ensemble's first teacher is a {first.task.name} model")
        if member.labels != first.labels:
            raise BertxError(f"{path}: its labels ({', '.join(member.labels)}) are not the first teacher's ({', '.join(first.labels)})")
        if member.tokenizer.get_vocab() != first.tokenizer.get_vocab():
            raise BertxError(f"{path}: its tokenizer is not the first teacher's; an ensemble's teachers read the same word pieces")


def member_weights(config: DistillConfig, paths: list[str], metric: str) -> list[float]:
    """The ensemble's weights, summing to 1: equal, given, or proportional to each teacher's dev `metric`."""
    if isinstance(config.teacher_weights, list):
        raw = list(config.teacher_weights)
    elif config.teacher_weights == "dev":
        raw = []
        for path in paths:
            try:
                raw.append(float(json.loads((Path(path) / "metrics.json").read_text(encoding="utf-8"))[metric]))
            except (OSError, ValueError, KeyError, TypeError):
                raise BertxError(f"{path}: teacher_weights: dev needs the teacher's metrics.json with its {metric}") from None
    else:
        raw = [1.0] * len(paths)
    total = sum(raw)
    if total <= 0:
        raise BertxError(f"teacher_weights: the weights ({', '.join(f'{w:g}' for w in raw)}) add up to nothing")
    return [w / total for w in raw]


class EnsembleLabeller:
    """`TeacherLabeller`'s interface over several teachers: `choose`, call on features, `summary`, `close`."""

    def __init__(self, config: DistillConfig, paths: list[str], members: list, weights: list[float], device, log: Callable[[str], None]):
        self.weights = weights
        self.combined_from_store = 0  # texts whose averaged outputs came from the store whole
        self.labellers = []
        for i, (path, member) in enumerate(zip(paths, members)):
            # Each member is its own teacher: its store entries, its digest; an int8 export is the first's only.
            labelling = config.labelling if i == 0 else config.labelling.model_copy(update={"teacher_export": None})
            own = config.model_copy(update={"teacher": path, "labelling": labelling})
            self.labellers.append(TeacherLabeller(own, member, device, log))

    def choose(self, sample_from: Features) -> None:
        for labeller in self.labellers:
            labeller.choose(sample_from)

    def __call__(self, features: Features) -> TeacherCache:
        """The weighted average of the members' outputs, stored once under a key of every member (its content
        and how it labelled) and the weights: a rerun reads one file instead of one per teacher."""
        first = self.labellers[0]
        name = None
        if first.config.labelling.store:
            name = teacher_store.key(self._digest(), "ensemble", first.label_kind, features)
            found = teacher_store.load(name, first.keys, features.lengths, first.log)
            if found is not None:
                self.combined_from_store += len(features.lengths)
                return TeacherCache.from_outputs(first.label_kind, found)
        combined = ensemble([labeller(features) for labeller in self.labellers], self.weights)
        if name is not None:
            teacher_store.save(name, combined.outputs if combined.per_token else combined.rows, first.keys, features.lengths)
        return combined

    def _digest(self) -> str:
        members = [f"{labeller._digest()}:{labeller.how}:{w!r}" for labeller, w in zip(self.labellers, self.weights)]
        return hashlib.sha256("|".join(members).encode()).hexdigest()

    @property
    def summary(self) -> dict:
        members = [labeller.summary for labeller in self.labellers]
        combined = {key: sum(m[key] for m in members) for key in ("from_store", "labelled")}
        combined["seconds"] = round(sum(m["seconds"] for m in members), 2)
        return {
            "texts": members[0]["texts"] + self.combined_from_store,
            **combined,
            "combined_from_store": self.combined_from_store,
            "teacher": f"ensemble of {len(members)}",
            "weights": [round(w, 6) for w in self.weights],
            "teachers": [
                {"teacher": str(labeller.config.teacher), "weight": round(w, 4), **m} for labeller, w, m in zip(self.labellers, self.weights, members)
            ],
        }

    def close(self) -> None:
        for labeller in self.labellers:
            labeller.close()
