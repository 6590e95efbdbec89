"""The teacher's labels for a distillation transfer set: the fastest teacher that agrees, labelled once.

    a sample of the labelled text -> the fp32 teacher's decisions -> each faster teacher in turn (the int8
    export when given, then bf16 where the CPU runs it fast): the first that decides as fp32 does on at
    least `min_agreement` of the sample labels the whole set, else fp32 does
    -> every part of the transfer set (labelled, unlabelled, augmented) looked up in the teacher store by
       content (`training/teacher_store.py`), labelled here or on Ray when missing, and stored

What was chosen, the agreement measured, the seconds spent and the store hits go into the run config, so a
report can say how the transfer set was made.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

import torch

from bertx.config import DistillConfig
from bertx.data.features import Features, inputs_of
from bertx.data.task_spec import label_level
from bertx.export.parity import decisions_agree
from bertx.errors import BertxError
from bertx.training import teacher_store
from bertx.training.accelerator import resolve_precision
from bertx.training.distiller import output_keys
from bertx.training.teacher_cache import TeacherCache

SAMPLE = 512  # examples the faster teachers are checked on (seconds of work)


class TeacherLabeller:
    def __init__(self, config: DistillConfig, teacher, device, log: Callable[[str], None]):
        self.config, self.teacher, self.device, self.log = config, teacher, device, log
        self.label_kind = teacher.task.label_kind
        self.keys = None if label_level(self.label_kind) == "sequence" else output_keys(self.label_kind)
        self.how = "fp32"
        self.summary: dict = {"texts": 0, "from_store": 0, "labelled": 0, "seconds": 0.0}
        self._export = None
        self._digests: dict[str, str] = {}
        self.stack = ExitStack()
        self._on_ray = False

    # ---- choosing the teacher ------------------------------------------------------------------
    def choose(self, sample_from: Features) -> None:
        """Try the faster teachers on a sample of the labelled text; keep the first that agrees."""
        settings = self.config.labelling
        sample = inputs_of(sample_from, range(min(SAMPLE, len(sample_from.lengths))))  # the same on every rerun
        candidates = []
        if settings.teacher_export:
            candidates.append("export")
        if resolve_precision(settings.precision) == "bf16":  # auto: where the CPU runs bf16 fast ($BERTX_PRECISION decides in tests)
            candidates.append("bf16")
        if not candidates:
            self.summary.update(teacher="fp32")
            return
        reference = self._local(sample, "fp32")
        for how in candidates:
            agreement = decisions_agree(self.label_kind, reference, self._local(sample, how), sample.lengths)
            self.summary.setdefault("agreement", {})[how] = round(agreement, 4)
            if agreement >= settings.min_agreement:
                self.how = how
                break
            self.log(
                f"note: the {self._name(how)} teacher decides as the fp32 teacher on {100 * agreement:.1f}% of "
                f"{len(sample.lengths)} sample texts, below {100 * settings.min_agreement:.0f}%: not used"
            )
        self.summary.update(teacher=self._name(self.how))

    def _name(self, how: str) -> str:
        return f"export {self.config.labelling.teacher_export}" if how == "export" else how

    # ---- labelling -----------------------------------------------------------------------------
    def __call__(self, features: Features) -> TeacherCache:
        """The teacher's outputs for these examples: from the store when this content was labelled before."""
        started = time.perf_counter()
        self.summary["texts"] += len(features.lengths)
        name = None
        if self.config.labelling.store:
            name = teacher_store.key(self._digest(), self.how, self.label_kind, features)
            found = teacher_store.load(name, self.keys, features.lengths, self.log)
            if found is not None:
                self.summary["from_store"] += len(features.lengths)
                return TeacherCache.from_outputs(self.label_kind, found)
        outputs = self._remote(features) if self.config.labelling.engine == "ray" else self._local(features, self.how)
        problem = teacher_store.check(outputs, self.keys, features.lengths)
        if problem is not None:  # a diverged or damaged teacher: a student trained on it would be NaN too
            raise BertxError(f"{self._source()}: the teacher's outputs are unusable ({problem}); retrain or re-export the teacher")
        self.summary["labelled"] += len(features.lengths)
        self.summary["seconds"] = round(self.summary["seconds"] + time.perf_counter() - started, 2)
        if name is not None:
            teacher_store.save(name, outputs, self.keys, features.lengths)
        return TeacherCache.from_outputs(self.label_kind, outputs)

    def _digest(self) -> str:
        source = self._source()
        if source not in self._digests:
            self._digests[source] = teacher_store.teacher_digest(source)
        return self._digests[source]

    def _source(self) -> str:
        return str(self.config.labelling.teacher_export if self.how == "export" else self.config.teacher)

    def _local(self, features: Features, how: str):
        from bertx.models.batched_outputs import model_outputs, token_outputs

        model, device = self.teacher.model, self.device
        if how == "export":
            model, device = self._export_model(), "cpu"
        dtype = torch.bfloat16 if how == "bf16" else None
        if self.keys is None:
            return model_outputs(model, features, self.teacher.pad_id, 128, device, dtype)
        return token_outputs(model, features, self.teacher.pad_id, self.keys, 128, device, dtype)

    def _export_model(self):
        if self._export is None:
            from bertx.inference.loading import load_trained

            folder = self.config.labelling.teacher_export
            if not Path(folder, "model.onnx").is_file():
                raise BertxError(f"{folder}: labelling.teacher_export must be a `bertx export` folder (model.onnx)")
            exported = load_trained(folder)
            if exported.labels != self.teacher.labels:
                raise BertxError(
                    f"{folder}: the export's labels ({', '.join(exported.labels)}) are not the teacher's ({', '.join(self.teacher.labels)})"
                )
            self._export = exported.model
        return self._export

    def _remote(self, features: Features):
        from bertx.scale.cluster import connected
        from bertx.scale.labelling import label_on_ray

        settings = self.config.labelling
        if not self._on_ray:  # one cluster for every part of the transfer set
            self.stack.enter_context(connected(settings.address))
            self._on_ray = True
        return label_on_ray(
            self._source(),
            features,
            self.teacher.pad_id,
            self.keys,
            bf16=self.how == "bf16",
            address=settings.address,
            workers=settings.workers,
            log=self.log,
        )

    def close(self) -> None:
        self.stack.close()
