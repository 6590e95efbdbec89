"""MultiTaskPredictor: a multi-task folder's sequence heads answered from one encoder pass.

    texts (or pairs) + the tasks asked for -> one tokenisation at the longest max_length they use -> one
    shared-encoder pass per length-sorted batch -> every head applied to that pass's output -> each task's
    labels and probabilities, decoded exactly as `Predictor` decodes them

A head runs alone on the shared output: its HF task model is called with a stand-in encoder that returns
the outputs already computed, so each head's own forward (pooler or [CLS] read, dropout, classifier) is
the one it was trained with. A task whose own max_length is shorter than the pass's sees, for the inputs
longer than it, a second pass at its length, so every answer equals the head's standalone model's
(tested, task by task). Token and span heads (NER, QA) read other windows; they are served by their
exported task models (`bertx multitask-export`), not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from bertx.data.batching import collate, sorted_batches
from bertx.data.examples import Example
from bertx.data.features import tokenize
from bertx.errors import BertxError
from bertx.inference.predictor import decode
from bertx.models.cls_only import enable_cls_only_last_layer
from bertx.models.encoder import load_tokenizer
from bertx.models.multitask import HEAD_WEIGHTS, HEADS_DIR, empty_head_model, head_labels, load_shared_encoder
from bertx.models.multitask_adapters import is_adapter_multitask
from bertx.runfolder import read_run_config
from bertx.tasks import TASKS, TaskSpec

SEQUENCE_HEAD = "AutoModelForSequenceClassification"


@dataclass
class Head:
    name: str
    spec: TaskSpec
    model: nn.Module  # the task model (HF, or a small student's head); its encoder attribute holds a stand-in between calls
    labels: list[str]
    max_length: int
    pairs: bool  # trained on text pairs


def _max_length(info: dict, run: dict) -> int:
    return int((info.get("data") or {}).get("max_length") or run.get("data", {}).get("max_length") or 128)


class _Computed(nn.Module):
    """Stands in for the encoder: returns the outputs the shared encoder already computed."""

    def __init__(self):
        super().__init__()
        self.outputs = None

    def forward(self, *args, **kwargs):
        return self.outputs


class OnnxHeads:
    """A multi-task ONNX export (`export/multitask.py`): one session run gives the heads asked for."""

    def __init__(self, graph: str | Path):
        from bertx.inference.onnx_model import OnnxTaskModel

        self.session = OnnxTaskModel(graph, None).session  # the same session options as a single-task export
        self.inputs = [i.name for i in self.session.get_inputs()]

    def logits(self, features, tasks: list[str], pad_id: int, batch_size: int) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for indices in sorted_batches(features.lengths, batch_size):
            batch = collate(features, indices, pad_id)
            feed = {name: (batch.get(name) if batch.get(name) is not None else torch.zeros_like(batch["input_ids"])).numpy() for name in self.inputs}
            for task, values in zip(tasks, self.session.run([f"logits_{t}" for t in tasks], feed)):
                if task not in out:
                    out[task] = np.empty((len(features.lengths), values.shape[1]), dtype=np.float32)
                out[task][indices] = values
        return out


class MultiTaskPredictor:
    def __init__(self, encoder: Optional[nn.Module], tokenizer, heads: dict[str, Head], skipped: list[str], onnx: Optional[OnnxHeads] = None):
        self.encoder, self.tokenizer, self.heads, self.skipped, self.onnx = encoder, tokenizer, heads, skipped, onnx
        self._computed = _Computed()
        for head in heads.values():
            if head.model is not None:
                setattr(head.model, head.model.base_model_prefix, self._computed)

    @classmethod
    def load(cls, folder: str | Path) -> "MultiTaskPredictor":
        """Load a `bertx multitask` folder: the shared encoder once, every sequence head beside it."""
        from safetensors.torch import load_file

        folder = Path(folder)
        run = read_run_config(folder) or {}
        if "multitask" not in run:
            raise BertxError(f"{folder}: not a multi-task folder (no `multitask` section in bertx_run.yaml)")
        if is_adapter_multitask(folder):
            raise BertxError(
                f"{folder}: a multi-task run of adapters; serve its tasks' adapters over one base instead "
                f"(bertx multitask-export each task, then bertx serve a=DIR1 b=DIR2)"
            )
        exported = (folder / "model.onnx").is_file()  # `bertx export` of a multi-task run: one graph, every head
        encoder = None if exported else load_shared_encoder(folder).eval()
        heads, skipped = {}, []
        patched = False
        for name, info in run["multitask"].items():
            spec = TASKS[info["task"]]
            if spec.auto_class != SEQUENCE_HEAD:
                skipped.append(name)
                continue
            head_dir = folder / HEADS_DIR / info["head"]
            if exported:
                pairs = bool((info.get("columns") or {}).get("text_pair"))
                heads[name] = Head(name, spec, None, head_labels(head_dir), _max_length(info, run), pairs)
                continue
            if not (head_dir / HEAD_WEIGHTS).is_file():
                raise BertxError(f"{head_dir}: the head of task {name!r} is missing")
            model = empty_head_model(head_dir, spec.auto_class)
            prefix = model.base_model_prefix
            setattr(model, prefix, encoder)
            missing, unexpected = model.load_state_dict(load_file(str(head_dir / HEAD_WEIGHTS)), strict=False)
            if unexpected or any(not k.startswith(prefix + ".") for k in missing):
                raise BertxError(f"{head_dir / HEAD_WEIGHTS}: head weights do not fit task {name!r}")
            model.eval()
            patched = enable_cls_only_last_layer(model) or patched  # every head here reads [CLS] only
            labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
            max_length = _max_length(info, run)
            pairs = bool((info.get("columns") or {}).get("text_pair"))
            heads[name] = Head(name, spec, model, labels, max_length, pairs)
        if not heads:
            raise BertxError(f"{folder}: no sequence head to serve ({', '.join(skipped)}: export them with bertx multitask-export)")
        if exported:
            skipped = list((run.get("export") or {}).get("skipped") or [])
            return cls(None, load_tokenizer(str(folder)), heads, skipped, OnnxHeads(folder / "model.onnx"))
        return cls(encoder, load_tokenizer(str(folder)), heads, skipped)

    def tasks_for(self, pairs: bool) -> list[str]:
        """The heads that read this kind of input (text pairs, or single texts)."""
        return [name for name, head in self.heads.items() if head.pairs == pairs]

    @torch.inference_mode()
    def predict(
        self, texts: Sequence[str], pairs: Optional[Sequence[str]] = None, tasks: Optional[Sequence[str]] = None, batch_size: int = 128
    ) -> list[dict[str, dict]]:
        """Every requested task's answer for every input: `[{task: {"label", "probs"} | {"score"} | ...}]`.

        Args:
            texts, pairs: the inputs (pairs for the tasks trained on pairs).
            tasks: the heads to answer (default: every head that reads this kind of input).
        """
        tasks = list(tasks) if tasks else self.tasks_for(pairs is not None)
        for name in tasks:
            if name not in self.heads:
                raise BertxError(f"no task {name!r} in this model (tasks: {', '.join(self.heads)})")
            if self.heads[name].pairs != (pairs is not None):
                raise BertxError(f"task {name!r} reads {'text pairs' if self.heads[name].pairs else 'single texts'}")
        results: list[dict[str, dict]] = [{} for _ in texts]
        if not texts:
            return results
        examples = [Example(t, p, None, i + 1) for i, (t, p) in enumerate(zip(texts, pairs or [None] * len(texts)))]
        longest = max(self.heads[name].max_length for name in tasks)
        features = tokenize(self.tokenizer, examples, longest)
        logits = self._heads_on(features, tasks, batch_size)
        for name in tasks:
            head = self.heads[name]
            if head.max_length < longest:  # inputs longer than this head reads: again, cut at its own length
                again = [i for i, n in enumerate(features.lengths) if n > head.max_length]
                if again:
                    cut = tokenize(self.tokenizer, [examples[i] for i in again], head.max_length)
                    logits[name][again] = self._heads_on(cut, [name], batch_size)[name]
            # Cut at `longest`, or (shorter window) longer than this head reads: those rows have length `longest`.
            truncated = set(
                features.truncated_rows if head.max_length == longest else [i for i, n in enumerate(features.lengths) if n > head.max_length]
            )
            for i, answer in enumerate(decode(head.spec, logits[name], head.labels)):
                if i in truncated:
                    answer["truncated"] = True
                results[i][name] = answer
        return results

    def _heads_on(self, features, tasks: list[str], batch_size: int) -> dict[str, np.ndarray]:
        if self.onnx is not None:
            return self.onnx.logits(features, tasks, self.tokenizer.pad_token_id, batch_size)
        out = {name: np.empty((len(features.lengths), self.heads[name].model.config.num_labels), dtype=np.float32) for name in tasks}
        for indices in sorted_batches(features.lengths, batch_size):
            batch = collate(features, indices, self.tokenizer.pad_token_id)
            self._computed.outputs = self.encoder(**batch)  # the one encoder pass of this batch
            for name in tasks:
                out[name][indices] = self.heads[name].model(**batch).logits.float().numpy()
        self._computed.outputs = None
        return out
