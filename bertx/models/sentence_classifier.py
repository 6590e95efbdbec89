"""A sentence encoder with a linear head on its mean-pooled tokens: what few-shot training produces.

SetFit-style training tunes the encoder so that mean-pooled sentence vectors of the same class lie close
together, then fits a logistic regression on those vectors. The model keeps that shape: the encoder (any
HF encoder, saved as an ordinary encoder folder, so `AutoModel` and sentence-transformers read it as a
sentence embedder) and `sentence_head.safetensors` + `sentence_head.json` (weights, labels, pooling,
normalisation).
bertx's loaders read the pair, so evaluate, predict, export and serve treat it like any classifier.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn
from bertx import runfolder

HEAD_FILE = "sentence_head.safetensors"
HEAD_CONFIG = "sentence_head.json"


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, H)


class SentenceClassifier(nn.Module):
    def __init__(self, encoder: nn.Module, labels: list[str], normalize: bool = True):
        super().__init__()
        self.encoder, self.normalize = encoder, normalize
        self.head = nn.Linear(encoder.config.hidden_size, len(labels))
        config = self.config = encoder.config
        config.id2label = dict(enumerate(labels))
        config.label2id = {name: i for i, name in enumerate(labels)}
        config.num_labels = len(labels)
        config.problem_type = "single_label_classification"

    @property
    def base_model(self) -> nn.Module:
        """The encoder, under the name HF heads give it: distillation copies a student's layers from it."""
        return self.encoder

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def set_attn_implementation(self, name: str) -> None:
        self.encoder.set_attn_implementation(name)

    def embed(self, input_ids, attention_mask=None, token_type_ids=None) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        pooled = mean_pool(hidden, attention_mask)  # (B, H)
        # Unit length, as sentence-transformers encoders such as all-MiniLM-L6-v2 are trained to be compared.
        return nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, **_unused):
        from transformers.modeling_outputs import SequenceClassifierOutput

        logits = self.head(self.embed(input_ids, attention_mask, token_type_ids))  # (B, C)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def save_pretrained(self, folder, safe_serialization: bool = True) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        self.encoder.config.architectures = [type(self.encoder).__name__]  # an encoder folder, not a task head
        self.encoder.save_pretrained(folder, safe_serialization=True)
        save_file({k: v.contiguous() for k, v in self.head.state_dict().items()}, str(folder / HEAD_FILE))
        labels = [self.config.id2label[i] for i in range(self.config.num_labels)]
        runfolder.write_text(folder / HEAD_CONFIG, json.dumps({"pooling": "mean", "normalize": self.normalize, "labels": labels}, indent=2) + "\n")


def is_sentence_classifier(folder: str | Path) -> bool:
    return (Path(folder) / HEAD_CONFIG).is_file()


def load_sentence_classifier(folder: str | Path) -> SentenceClassifier:
    from safetensors.torch import load_file
    from transformers import AutoModel

    folder = Path(folder)
    head = json.loads((folder / HEAD_CONFIG).read_text(encoding="utf-8"))
    model = SentenceClassifier(AutoModel.from_pretrained(folder), head["labels"], head.get("normalize", False))
    model.head.load_state_dict(load_file(str(folder / HEAD_FILE)))
    return model.eval()
