"""Tracing a PyTorch model into an ONNX graph: the inputs its forward takes, the wrapper the exporter
traces (positional inputs, a tuple out), and the trace itself on a padded example batch. Used by `export`
(one task, `one_model.py`) and `multitask.py` (every head in one graph); neither imports the other.
"""

from __future__ import annotations

import torch


def input_names(model) -> list[str]:
    """The inputs the model's forward takes (DistilBERT and RoBERTa-likes have no token types)."""
    import inspect

    accepted = inspect.signature(model.forward).parameters
    return [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in accepted]


def output_names(task) -> list[str]:
    return ["start_logits", "end_logits"] if task.name == "qa" else ["logits"]


class TupleOutputs(torch.nn.Module):
    """The HF model with positional inputs and a tuple of tensors out: what the exporter traces."""

    def __init__(self, model, names: list[str], outputs_: list[str]):
        super().__init__()
        self.model, self.names, self.outputs = model, names, outputs_

    def forward(self, *inputs):
        result = self.model(**dict(zip(self.names, inputs)))
        return tuple(getattr(result, name) for name in self.outputs)


def trace(
    wrapper: torch.nn.Module,
    tokenizer,
    names: list[str],
    outputs: dict[str, dict],
    path,
    opset: int,
    extra: dict[str, tuple[torch.Tensor, dict]] | None = None,
) -> None:
    """torch.onnx.export of `wrapper` (positional inputs `names`, then the `extra` tensors with their dynamic
    axes; outputs named by `outputs` with theirs) on a padded example batch of two rows, so the traced graph
    keeps the attention mask's path. `path`: a file, or a BytesIO for a graph kept in memory."""
    import warnings

    encoded = tokenizer(["a short example", "a somewhat longer example sentence for the export"], padding=True, return_tensors="pt")
    sample = tuple(encoded[name] if name in encoded else torch.zeros_like(encoded["input_ids"]) for name in names)
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    extra = extra or {}
    sample += tuple(tensor for tensor, _ in extra.values())
    names = names + list(extra)
    axes.update({name: dynamic for name, (_, dynamic) in extra.items()})
    axes.update(outputs)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on Python control flow in transformers' code
        torch.onnx.export(
            wrapper,
            sample,
            path if hasattr(path, "write") else str(path),
            input_names=names,
            output_names=list(outputs),
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
