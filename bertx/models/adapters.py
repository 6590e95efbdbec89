"""Parameter-efficient fine-tuning: LoRA and IA3 through `peft`, BitFit by hand (peft has no BitFit).

The encoder stays frozen; what trains is the adapter (LoRA's low-rank pairs, IA3's scaling vectors, or
BitFit's biases) plus the task head. The known trap of PEFT classifiers is a reloaded model with a
random head: here the head is always in `modules_to_save` (LoRA/IA3) or in the saved tensors (BitFit),
and the tests reload and compare predictions.

A PEFT run folder holds:
    adapter_config.json + adapter_model.safetensors   LoRA / IA3 (peft's own format: `AutoPeftModelFor...`
                                                      and `PeftModel.from_pretrained` read it)
    bitfit_model.safetensors                          BitFit: the biases and the head, nothing else
    config.json                                       the base config with the task's labels
    tokenizer files, bertx_run.yaml                   (the base model's path is in both configs)

Loading puts the adapter back on the base model and, for LoRA and IA3, merges it into the weights, so
prediction costs what a fully fine-tuned model costs (`bertx merge`, in export/merge.py, writes that merged
model as a plain HF folder).
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from bertx.errors import BertxError
from bertx.models.encoder import without_load_report

METHODS = ("lora", "ia3", "bitfit")
BITFIT_FILE = "bitfit_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
# Every linear map of a BERT layer: LoRA on all of them reaches full fine-tuning with rank 8
# (q and v alone, the LoRA paper's choice for large models, lost about 2 points on MiniLM; see docs).
LORA_TARGETS = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]
IA3_TARGETS = ["key", "value", "output.dense"]
IA3_FEEDFORWARD = ["output.dense"]
# QA has no peft task type here on purpose: peft 0.21's PeftModelForQuestionAnswering.forward takes
# token_type_ids and never passes them on, so a BERT QA adapter would train blind to which tokens are the
# question and which the context, then be served (merged) with them: found when the merged model's F1 fell
# 0.12 below the unmerged one's on the toy task. The plain PeftModel passes every input through.
PEFT_TASK_TYPES = {
    "AutoModelForSequenceClassification": "SEQ_CLS",
    "AutoModelForTokenClassification": "TOKEN_CLS",
    "AutoModelForQuestionAnswering": None,
}


def head_modules(model: nn.Module) -> list[str]:
    """The modules trained and saved in full beside the adapter: the task model's own modules outside the
    encoder (classifier, qa_outputs, ...), and any encoder module whose weights the base folder lacked
    (a pooler that a masked-LM checkpoint never had), which would otherwise stay random and unsaved."""
    prefix = getattr(model, "base_model_prefix", "")
    heads = [name for name, child in model.named_children() if name != prefix and any(True for _ in child.parameters())]
    for key in new_encoder_weights(model):
        owner = key.rsplit(".", 1)[0]  # e.g. bert.pooler.dense (the Linear itself: IA3's merge needs a .weight)
        if owner.split(".")[1] not in ("embeddings", "encoder") and owner not in heads:
            heads.append(owner)
    return heads


def new_encoder_weights(model: nn.Module) -> list[str]:
    """Encoder weights the base folder lacked, which start random (a masked-LM checkpoint has no pooler)."""
    prefix = getattr(model, "base_model_prefix", "")
    return [key for key in getattr(model, "bertx_new_weights", []) if key.startswith(prefix + ".")]


def add_adapters(model: nn.Module, options, auto_class: str) -> nn.Module:
    """Freeze `model`'s encoder and attach the trainable parts `options.method` names (`config.PeftOptions`)."""
    heads = head_modules(model)
    if options.method == "bitfit":
        for name, param in model.named_parameters():
            param.requires_grad_(name.endswith(".bias") or any(name.startswith(h + ".") for h in heads))
        return model
    import peft

    targets = options.target_modules or (LORA_TARGETS if options.method == "lora" else IA3_TARGETS)
    check_targets(model, targets)
    task_type = PEFT_TASK_TYPES[auto_class]
    if options.method == "lora":
        settings = peft.LoraConfig(
            task_type=task_type,
            r=options.r,
            lora_alpha=options.alpha,
            lora_dropout=options.dropout,
            target_modules=targets,
            modules_to_save=heads,
            use_rslora=options.rslora,
            bias=options.bias,
        )
    else:
        feedforward = [t for t in (options.feedforward_modules or IA3_FEEDFORWARD) if t in targets]
        settings = peft.IA3Config(task_type=task_type, target_modules=targets, feedforward_modules=feedforward, modules_to_save=heads)
    return peft.get_peft_model(model, settings)


def lr_scales(options) -> dict[str, float]:
    """Per-parameter learning-rate multipliers of a PEFT run (LoRA+: the B matrices learn faster)."""
    return {"lora_B": options.b_lr_ratio} if options and options.method == "lora" and options.b_lr_ratio != 1.0 else {}


def trains_biases(options) -> bool:
    """Whether the method trains the encoder's own biases (BitFit; LoRA with bias: all)."""
    return options.method == "bitfit" or (options.method == "lora" and options.bias != "none")


def check_targets(model: nn.Module, targets: list[str]) -> None:
    """An unknown target module is one line naming it, not peft's exception after the folder is claimed."""
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    for target in targets:
        if not any(name == target or name.endswith("." + target) for name in names):
            sample = sorted({name.split(".")[-1] for name in names})
            raise BertxError(
                f"peft.target_modules: no linear layer of this model is named {target!r} (its linear layers end in: {', '.join(sample)})"
            )


def trainable_counts(model: nn.Module) -> dict:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"trainable_parameters": trainable, "total_parameters": total, "trainable_pct": round(100 * trainable / max(total, 1), 3)}


class AdapterModel(nn.Module):
    """What the run lifecycle saves for a PEFT run: the adapter (or BitFit tensors), the labelled config."""

    def __init__(self, model: nn.Module, method: str):
        super().__init__()
        self.model, self.method = model, method

    def save_pretrained(self, folder, safe_serialization: bool = True) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.method == "bitfit":
            from safetensors.torch import save_file

            kept = {name: p.detach().contiguous() for name, p in self.model.named_parameters() if p.requires_grad}
            save_file(kept, str(folder / BITFIT_FILE))
            self.model.config.save_pretrained(folder)
            return
        self.model.save_pretrained(folder)  # adapter_config.json + adapter_model.safetensors (head included)
        self.model.get_base_model().config.save_pretrained(folder)


def is_adapter_folder(folder: str | Path) -> bool:
    folder = Path(folder)
    return (folder / ADAPTER_CONFIG).is_file() or (folder / BITFIT_FILE).is_file()


def base_model_path(folder: Path, run: dict) -> str:
    """The frozen encoder the adapter was trained on: bertx_run.yaml first, then peft's adapter config."""
    import json

    path = (run.get("model") or {}).get("name_or_path")
    if not path and (folder / ADAPTER_CONFIG).is_file():
        path = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not path or not Path(path).is_dir():
        raise BertxError(
            f"{folder}: an adapter needs its base model, {path or 'unknown'}, which is not a folder here; "
            "put it back, or merge the adapter where it is (`bertx merge`)"
        )
    return str(path)


def base_with_head(folder: Path, auto_class: str, run: dict) -> nn.Module:
    """The adapter's base model under a head shaped by `folder`'s config (labels); the head's weights
    come from the adapter, so transformers' "newly initialised" report is not shown."""
    import transformers
    from transformers import AutoConfig

    with without_load_report():
        return getattr(transformers, auto_class).from_pretrained(base_model_path(folder, run), config=AutoConfig.from_pretrained(folder))


def load_adapter_model(folder: str | Path, auto_class: str, run: dict, merge: bool = True) -> nn.Module:
    """The base model with the adapter (or BitFit tensors) of `folder` on it; LoRA/IA3 merged when `merge`."""
    folder = Path(folder)
    model = base_with_head(folder, auto_class, run)
    if (folder / BITFIT_FILE).is_file():
        from safetensors.torch import load_file

        tensors = load_file(str(folder / BITFIT_FILE))
        missing = set(tensors) - {name for name, _ in model.named_parameters()}
        if missing:
            raise BertxError(f"{folder / BITFIT_FILE}: tensors the base model lacks ({', '.join(sorted(missing)[:3])})")
        model.load_state_dict(tensors, strict=False)
        return model.eval()
    from peft import PeftModel

    model = PeftModel.from_pretrained(model, str(folder))
    return (model.merge_and_unload() if merge else model).eval()
