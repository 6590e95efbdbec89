"""Compute the encoder's last layer for the [CLS] position only, when that is all the head reads.

A BERT sequence head looks at one vector: the last layer's output at position 0 (through the pooler).
Yet the stock forward computes every position of that layer, about a sixth of the encoder's work on
MiniLM, only to throw all but one row away. Here the last layer still computes keys and values for all
positions (the [CLS] query attends to them), but its query, attention output, feed-forward and
LayerNorms for the [CLS] row alone. Results are the same to float rounding (tested against the stock
forward, values and gradients); training and prediction get about 14% fewer FLOPs.

It patches the `forward` of that one layer *instance*: parameters, `state_dict` and `save_pretrained`
are untouched, so saved folders load anywhere as usual. Models whose layers are not BERT-shaped
(`attention.self.query/key/value`, `attention.output`, `intermediate`, `output`) are left alone.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn

CLS_HEADS = ("bert", "roberta", "xlm-roberta", "camembert", "electra")


def _last_layer(model: nn.Module) -> nn.Module | None:
    prefix = getattr(model, "base_model_prefix", None)  # None: not an HF task model (e.g. a mean-pooling classifier)
    base = getattr(model, prefix, None) if prefix else None
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList) or not layers:
        return None
    last = layers[-1]
    attention = getattr(last, "attention", None)
    needed = (
        getattr(attention, "self", None),
        getattr(attention, "output", None),
        getattr(last, "intermediate", None),
        getattr(last, "output", None),
    )
    if any(part is None for part in needed) or getattr(last, "add_cross_attention", False):
        return None
    if not all(hasattr(attention.self, name) for name in ("query", "key", "value", "attention_head_size", "scaling")):
        return None
    return last


def _cls_only_forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, *args, **kwargs):
    attn = self.attention.self
    B, T, H = hidden_states.shape
    hs = attn.attention_head_size
    cls = hidden_states[:, :1]  # (B, 1, H)
    q = attn.query(cls).view(B, 1, -1, hs).transpose(1, 2)  # (B, nh, 1, hs)
    k = attn.key(hidden_states).view(B, T, -1, hs).transpose(1, 2)  # (B, nh, T, hs)
    v = attn.value(hidden_states).view(B, T, -1, hs).transpose(1, 2)  # (B, nh, T, hs)
    if attention_mask is not None and attention_mask.dim() == 4:
        attention_mask = attention_mask[:, :, :1, :]  # the [CLS] query's row: (B, 1|nh, 1, T)
    elif attention_mask is not None and attention_mask.dim() == 2:
        attention_mask = attention_mask[:, None, None, :].bool()  # a plain (B, T) padding mask
    context = F.scaled_dot_product_attention(
        q, k, v, attn_mask=attention_mask, dropout_p=attn.dropout.p if self.training else 0.0, scale=attn.scaling
    )  # (B, nh, 1, hs)
    context = context.transpose(1, 2).reshape(B, 1, -1)  # (B, 1, H)
    attention_output = self.attention.output(context, cls)  # dense + dropout + LayerNorm(residual)
    return self.output(self.intermediate(attention_output), attention_output)  # (B, 1, H)


def enable_cls_only_last_layer(model: nn.Module) -> bool:
    """Patch the last encoder layer of a [CLS]-reading sequence model; return whether it was patched."""
    if getattr(model.config, "model_type", None) not in CLS_HEADS:
        return False
    if "SequenceClassification" not in type(model).__name__:
        return False  # only heads known to read position 0 alone
    last = _last_layer(model)
    if last is None:
        return False
    last.forward = types.MethodType(_cls_only_forward, last)
    return True


def disable_cls_only_last_layer(model: nn.Module) -> None:
    last = _last_layer(model)
    if last is not None and "forward" in last.__dict__:
        del last.forward
