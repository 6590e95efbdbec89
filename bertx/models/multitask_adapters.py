"""Multi-task parameter-efficient training: one frozen encoder in memory, one adapter and head per task.

`bertx multitask ... peft.method=lora` builds each head's HF task model as a single-task PEFT run
would, then points every model's frozen encoder weights at the first model's tensors (one copy in
memory) before the adapters go on. Each task then trains only its own adapter and head:

    AdapterTaskModels
      models: ModuleDict
        rte   PeftModel(BertForSequenceClassification)   LoRA A/B + classifier: rte's own
        conll PeftModel(BertForTokenClassification)      LoRA A/B + classifier: conll's own
      (the frozen BertModel weights under both: the same tensors)

Why separate adapters rather than one shared adapter: the joint GLUE run lost 3 points to tasks pulling
the shared encoder apart; with a frozen encoder and per-task adapters no task can hurt another, and
each task's result is a standalone adapter folder that `bertx serve` can put beside the others over
one base model. What is shared is the process, the data pipeline and the encoder's memory.

BitFit (and LoRA with `bias: all`) trains the encoder's own biases, so there the biases stay per task
(tiny) and only the weight matrices are shared.

The folder:
    DIR/adapters/<head>/   exactly what `bertx finetune --peft METHOD` writes for one task (adapter or
                           BitFit tensors, head included; labelled config.json; tokenizer)
    DIR/bertx_run.yaml     the run config, with each task's columns, labels and the base model's path
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from bertx.models.adapters import AdapterModel

ADAPTERS_DIR = "adapters"


def share_frozen_weights(models: list[nn.Module], keep_own=lambda name: False) -> int:
    """Point the encoder parameters of `models[1:]` at `models[0]`'s tensors where name and shape agree
    (`keep_own(name)` keeps a model's own copy). Returns how many tensors were shared."""
    first = dict(models[0].base_model.named_parameters())
    shared = 0
    for model in models[1:]:
        for module_name, module in model.base_model.named_modules():
            for name, param in list(module.named_parameters(recurse=False)):
                full = f"{module_name}.{name}" if module_name else name
                source = first.get(full)
                if source is not None and source.shape == param.shape and not keep_own(full):
                    setattr(module, name, source)
                    shared += 1
    return shared


class AdapterTaskModels(nn.Module):
    def __init__(self, task_models: dict[str, nn.Module], head_of: dict[str, str], method: str, tokenizer):
        """
        Args:
            task_models: head name -> that head's PEFT model (frozen encoder weights shared between them).
            head_of: task name -> head name.
            method: lora, ia3 or bitfit (how each head's folder is written).
            tokenizer: written into every head's folder, so each is a standalone PEFT run folder.
        """
        super().__init__()
        self.models = nn.ModuleDict(task_models)
        self.head_of, self.method, self.tokenizer = dict(head_of), method, tokenizer

    @property
    def config(self):
        """The encoder's config (layer counts for layer-wise learning rates)."""
        first = next(iter(self.models.values()))
        return getattr(first, "get_base_model", lambda: first)().config

    def task_model(self, task: str) -> nn.Module:
        return self.models[self.head_of[task]]

    def forward(self, task: str, **batch):
        return self.task_model(task)(**batch)

    def save_pretrained(self, folder, safe_serialization: bool = True) -> None:
        """Every head's adapter folder under `folder/adapters/` (written atomically by `outputs.save_model_atomic`)."""
        for head, model in self.models.items():
            target = Path(folder) / ADAPTERS_DIR / head
            AdapterModel(model, self.method).save_pretrained(target)
            self.tokenizer.save_pretrained(target)


def is_adapter_multitask(folder: str | Path) -> bool:
    return (Path(folder) / ADAPTERS_DIR).is_dir()
