"""A folder of LoRA adapters of one base, served as one model whose micro-batches mix adapters.

    bertx serve reviews=adapters/          adapters/<name>/ : LoRA adapter folders (bertx finetune
                                           --peft lora, or a multi-task run's adapters/<task>/)
    POST /v1/models/reviews/predict {"inputs": ["a fine film"], "adapter": "sst2"}
    -> {"outputs": [{"text": ..., "adapter": "sst2", "label": ..., "probs": {...}}]}

Requests naming different adapters join the same batch: the base weights run once for all of its rows,
each row adds its own adapter's low-rank update and goes through its own head (`models/lora_bank.py`).
Adapters may have different label sets. The bank runs as one ONNX graph by default
(`export/bank_graph.py`: 2-3x PyTorch's speed on the CPU, the factors passed per call so live changes need
no new graph); `runtime="pytorch"` keeps it in PyTorch. With the admin route on (`bertx serve --admin-token-file`),
`POST /v1/adapters/{name}` loads another adapter and `DELETE` removes one while requests are in flight.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertx.serve.batcher import MicroBatcher, TokenWeight
from bertx.serve.protocol import BadRequest, WARM_UP_TEXT, canonical_input, checked_list, pair_form, timed_warm_up
from bertx.errors import BertxError
from bertx.tasks import TASKS

SEQUENCE_TASKS = tuple(name for name, spec in TASKS.items() if spec.level == "sequence")  # one output per text or pair
RUNTIMES = ("onnx", "pytorch")


def is_bank_folder(folder: str | Path) -> bool:
    """A folder (not itself an adapter or a model) whose subfolders are LoRA adapter folders."""
    folder = Path(folder)
    if not folder.is_dir() or (folder / "adapter_config.json").is_file() or (folder / "config.json").is_file():
        return False
    return any((child / "adapter_config.json").is_file() for child in folder.iterdir() if child.is_dir())


def adapter_facts(folder: Path) -> tuple[str, object, list[str], dict]:
    """(base model path, task spec, labels, run config) of one adapter folder, or one line."""
    from bertx.models.adapters import base_model_path
    from bertx.runfolder import read_run_config

    if not (folder / "adapter_config.json").is_file():
        raise BertxError(f"{folder}: not an adapter folder (no adapter_config.json)")
    run = read_run_config(folder) or {}
    task = TASKS.get(run.get("task") or "classification")
    if task is None or task.name not in SEQUENCE_TASKS:
        raise BertxError(f"{folder}: a {run.get('task')} adapter; a mixed batch serves sequence tasks ({', '.join(SEQUENCE_TASKS)}); serve it merged")
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise BertxError(f"{folder}/config.json: unreadable ({err})") from None
    count = int(config.get("num_labels", len(config.get("id2label") or [0, 1])))
    labels = [config.get("id2label", {}).get(str(i), f"LABEL_{i}") for i in range(count)]
    return base_model_path(folder, run), task, labels, run


@dataclass
class AdapterBankServed:
    name: str
    folder: str
    bank: Any  # bertx.models.lora_bank.LoraBank
    tokenizer: Any
    max_length: int
    specs: dict  # adapter name -> its task spec
    base: str
    batcher: MicroBatcher | None = None
    info: dict = field(default_factory=dict)
    graph: Any = None  # bertx.export.bank_graph.BankGraph, or None: the bank runs in PyTorch
    pairs: dict = field(default_factory=dict)  # adapter name -> reads pairs (True), single texts (False) or either (None)
    counter: TokenWeight | None = None

    kind = "adapters"

    @classmethod
    def load(cls, name: str, folder: str, runtime: str = "onnx") -> "AdapterBankServed":
        from bertx.inference.loading import data_options
        from bertx.inference.predictor import reads_pairs
        from bertx.models.adapters import base_with_head
        from bertx.models.cls_only import enable_cls_only_last_layer
        from bertx.models.encoder import load_tokenizer
        from bertx.models.lora_bank import LoraBank, read_adapter

        if runtime not in RUNTIMES:
            raise BertxError(f"runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
        members = sorted(child for child in Path(folder).iterdir() if (child / "adapter_config.json").is_file())
        facts = {child.name: adapter_facts(child) for child in members}
        first = members[0]
        base, task, _, run = facts[first.name]
        others = [child for child in members if facts[child.name][0] != base]
        if others:
            raise BertxError(f"{others[0]}: its base model ({facts[others[0].name][0]}) is not {base}; a bank serves adapters of one base")
        adapters = [read_adapter(child.name, child, facts[child.name][2]) for child in members]
        model = base_with_head(first, task.auto_class, run)
        enable_cls_only_last_layer(model)  # the heads read [CLS] alone, as a merged model is served
        targets = sorted({p for a in adapters for p in a.lora})
        heads = sorted({p for a in adapters for p in a.heads})
        bank = LoraBank(model, targets, heads)
        bank.load(adapters)
        del adapters  # the bank keeps only its stacks
        max_length = data_options(run).max_length
        tokenizer = load_tokenizer(str(first))
        graph = None
        if runtime == "onnx":
            from bertx.export.bank_graph import BankGraph

            graph = BankGraph(bank, tokenizer)
            bank.release_base()  # ONNX Runtime holds the base weights now; PyTorch's copy would only take memory
        served = cls(
            name,
            str(folder),
            bank,
            tokenizer,
            max_length,
            {n: f[1] for n, f in facts.items()},
            base,
            graph=graph,
            pairs={n: reads_pairs(f[1], f[3]) for n, f in facts.items()},
        )
        served.info = served.describe()
        return served

    def describe(self) -> dict:
        state = self.bank.state
        return {
            "name": self.name,
            "task": "adapters",
            "runtime": "onnx" if self.graph else "pytorch",
            "mixed_batches": True,
            "max_length": self.max_length,
            "adapters": {
                n: {"task": self.specs[n].name, "labels": list(labels) if self.specs[n].label_kind != "score" else []}
                for n, labels in zip(state.names, state.labels)
            },
        }

    # ---- requests ------------------------------------------------------------------------------
    def check(self, inputs: Any, limits, tasks: Any = None, adapter: Any = None) -> list:
        """Each input as (text, pair or None, adapter name)."""
        if tasks is not None:
            raise BadRequest(422, f"`tasks` is for multi-task models; model {self.name!r} is a folder of adapters")
        if not isinstance(adapter, str):
            raise BadRequest(
                422,
                f"model {self.name!r} serves adapters: name one with `adapter` (one of "
                f"{', '.join(self.bank.state.names[:10])}{', ...' if len(self.bank.state.names) > 10 else ''})",
            )
        if adapter not in self.bank.state.names:
            raise BadRequest(404, f"no adapter {adapter!r} in model {self.name!r}")
        spec = self.specs[adapter]
        pairs = self.pairs.get(adapter) if spec.pair != "required" else True
        items = []
        for i, item in enumerate(checked_list(inputs, limits)):
            text, pair = pair_form(i, canonical_input(i, item, spec.name), pairs, f"adapter {adapter!r}")
            items.append((text, pair, adapter))
        return items

    def predict(self, items: list) -> list[dict]:
        """One batch of mixed adapters: one pass; each row decoded with its own adapter's labels."""
        from bertx.data.batching import collate
        from bertx.data.examples import Example
        from bertx.data.features import tokenize
        from bertx.inference.predictor import decode

        state = self.bank.state  # this batch keeps this version, whatever is added or removed meanwhile
        gone = [a for _, _, a in items if a not in state.names]
        if gone:
            raise BadRequest(404, f"adapter {gone[0]!r} was removed")
        features = tokenize(self.tokenizer, [Example(t, p, None, i + 1) for i, (t, p, _) in enumerate(items)], self.max_length)
        slots = [state.slot(a) for _, _, a in items]
        batch = collate(features, list(range(len(items))), self.tokenizer.pad_token_id)
        if self.graph is not None:
            logits = self.graph.logits(state, slots, batch)
        else:
            logits = self.bank.forward(state, slots, **batch).float().numpy()
        out = []
        for row, ((text, pair, adapter), slot) in enumerate(zip(items, slots)):
            labels = list(state.labels[slot])
            width = max(1, len(labels)) if self.specs[adapter].label_kind != "score" else 1
            record = decode(self.specs[adapter], logits[row : row + 1, :width], labels)[0]
            if row in features.truncated_rows:
                record["truncated"] = True
            out.append({"text": text, **({"text_pair": pair} if pair is not None else {}), "adapter": adapter, **record})
        return out

    def weigh(self, item) -> int:
        if self.counter is None:
            self.counter = TokenWeight(self.tokenizer, self.max_length)
        return self.counter(item)

    def warm_up(self) -> float:
        name = self.bank.state.names[0]
        return timed_warm_up(self, (WARM_UP_TEXT, WARM_UP_TEXT if self.specs[name].pair == "required" else None, name))

    # ---- live changes --------------------------------------------------------------------------
    def add_adapter(self, adapter: str, folder: str) -> dict:
        """Load another adapter of this base (or a new version of one) into the bank."""
        from bertx.models.lora_bank import read_adapter

        from bertx.inference.predictor import reads_pairs

        base, task, labels, run = adapter_facts(Path(folder))
        if base != self.base:
            raise BertxError(f"{folder}: its base model ({base}) is not this bank's ({self.base})")
        self.bank.add(read_adapter(adapter, folder, labels))
        self.specs[adapter], self.pairs[adapter] = task, reads_pairs(task, run)
        self.info = self.describe()
        return {"adapter": adapter, "adapters": len(self.bank.state.names)}

    def remove_adapter(self, adapter: str) -> dict:
        if len(self.bank.state.names) == 1 and adapter in self.bank.state.names:
            raise BertxError(f"adapter {adapter!r} is the bank's last; a bank keeps at least one")
        self.bank.remove(adapter)
        self.info = self.describe()
        return {"adapter": adapter, "adapters": len(self.bank.state.names)}
