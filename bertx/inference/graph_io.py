"""What both exported runtimes share: the export files' names, the int64 feed a graph takes, and the HF
output types their results are wrapped in. `onnx_model` and `openvino_model` import it; neither imports the other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

ONNX_FILE = "model.onnx"
OPENVINO_FILE = "openvino_model.xml"  # with openvino_model.bin beside it (the name optimum-intel uses too)


def int64_feed(names: list[str], input_ids, attention_mask=None, token_type_ids=None) -> dict[str, np.ndarray]:
    """The graph's inputs as int64 arrays; one it takes but the batch lacks gets its neutral value."""
    given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
    feed = {}
    for name in names:
        value = given.get(name)
        if value is None:
            value = torch.ones_like(input_ids) if name == "attention_mask" else torch.zeros_like(input_ids)
        feed[name] = value.detach().cpu().numpy().astype(np.int64)
    return feed


def wrap_outputs(values: dict[str, torch.Tensor]):
    """The HF output type the PyTorch model would have returned."""
    from transformers.modeling_outputs import QuestionAnsweringModelOutput, SequenceClassifierOutput, TokenClassifierOutput

    if "start_logits" in values:
        return QuestionAnsweringModelOutput(start_logits=values["start_logits"], end_logits=values["end_logits"])
    logits = values["logits"]
    return (TokenClassifierOutput if logits.dim() == 3 else SequenceClassifierOutput)(logits=logits)


def is_export(folder: str | Path) -> bool:
    """An ONNX or OpenVINO export folder."""
    return (Path(folder) / ONNX_FILE).is_file() or (Path(folder) / OPENVINO_FILE).is_file()
