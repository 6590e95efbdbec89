"""Several LoRA / IA3 adapters of one base model, served from one copy of that model.

`bertx serve a=runs/sst2-lora b=runs/imdb-lora` would otherwise load (and merge) the encoder once per
adapter. Here adapters that share a base folder, a head class and a label count are loaded as named
adapters of one `PeftModel`; each served name gets a view that switches to its adapter for its batch.
Memory grows by the adapters and their heads, not by encoders. The price: the adapter is not merged
(LoRA's extra matmuls run at every call) and the views take turns on the shared model (a lock), which on
a CPU whose cores one batch already fills costs little. They share one tokenizer when the
folders' tokenizer files are the same (about 9 MB each otherwise), so a whole batch takes its turn.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from torch import nn

from bertx.models.adapters import ADAPTER_CONFIG, base_model_path, base_with_head
from bertx.models.cls_only import enable_cls_only_last_layer


class AdapterView(nn.Module):
    """One served adapter: the shared model with this adapter active, and this adapter's own labels."""

    def __init__(self, shared: nn.Module, name: str, config, lock: threading.Lock):
        super().__init__()
        self.shared, self.adapter, self.config, self.lock = shared, name, config, lock

    def forward(self, **batch):
        with self.lock:
            self.shared.set_adapter(self.adapter)
            return self.shared(**batch)


def shared_groups(named: dict[str, str], read_run) -> list[list[tuple[str, str]]]:
    """Served (name, folder) pairs grouped by what they can share: base folder, head class, label count.
    Only groups of two or more adapters are returned; everything else loads on its own."""
    from bertx.tasks import TASKS

    groups: dict[tuple, list[tuple[str, str]]] = {}
    for name, folder in named.items():
        folder_path = Path(folder)
        if not (folder_path / ADAPTER_CONFIG).is_file():
            continue
        run = read_run(folder_path) or {}
        if run.get("task") not in TASKS:
            continue
        labels = json.loads((folder_path / "config.json").read_text(encoding="utf-8")).get("id2label") or {}
        key = (base_model_path(folder_path, run), TASKS[run["task"]].auto_class, len(labels))
        groups.setdefault(key, []).append((name, folder))
    return [members for members in groups.values() if len(members) > 1]


def load_shared(members: list[tuple[str, str]], auto_class: str, run_of) -> dict[str, tuple[nn.Module, object]]:
    """{served name: (view, its config)} for adapters of one base, loaded into one PeftModel."""
    from peft import PeftModel
    from transformers import AutoConfig

    first_name, first_folder = members[0]
    model = base_with_head(Path(first_folder), auto_class, run_of(first_folder))
    if auto_class == "AutoModelForSequenceClassification":
        enable_cls_only_last_layer(model)  # as a merged model is served: the head reads [CLS] only
    shared = PeftModel.from_pretrained(model, first_folder, adapter_name=first_name)
    for name, folder in members[1:]:
        shared.load_adapter(folder, adapter_name=name)
    shared.eval()
    lock = threading.RLock()  # re-entered: a served batch holds it around tokenizing and the forward pass
    views = {}
    for name, folder in members:
        config = AutoConfig.from_pretrained(folder)
        views[name] = (AdapterView(shared, name, config, lock).eval(), config)
    return views
