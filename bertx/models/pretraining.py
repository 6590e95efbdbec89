"""Pretraining models: size presets, a new BERT or a continued one, and the MLM (+ NSP/SOP) objective.

The saved model is a plain `BertForPreTraining` folder, so `from_pretrained`, `pipeline("fill-mask")`
and `bertx finetune --model DIR` load it unchanged. The training objective is computed here rather
than by `BertForPreTraining.forward`, for one reason: HF scores the whole vocabulary at every
position, though only the ~15% masked positions carry a label. `PretrainingObjective` runs the
vocabulary projection on the masked positions alone, which on a small BERT is most of the step's
arithmetic (the projection is vocab x hidden per token, more than a whole 4-layer, 256-wide encoder).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bertx.data.masking import id_space
from bertx.errors import BertxError

# Sizes of Google's BERT miniatures (Turc et al., 2019): heads = hidden / 64, feed-forward = 4 x hidden.
PRESETS = {
    "tiny": (2, 128),
    "mini": (4, 256),
    "small": (4, 512),
    "medium": (8, 512),
    "base": (12, 768),
}


def architecture(preset: str | None, layers: int | None, hidden: int | None, heads: int | None) -> tuple[int, int, int]:
    """(layers, hidden, heads) from a preset, with explicit values taking precedence."""
    if preset is not None and preset not in PRESETS:
        raise BertxError(f"unknown size preset {preset!r}; choose one of {', '.join(PRESETS)}")
    base_layers, base_hidden = PRESETS[preset or "mini"]
    layers, hidden = layers or base_layers, hidden or base_hidden
    heads = heads or max(1, hidden // 64)
    if hidden % heads:
        raise BertxError(f"hidden size {hidden} is not divisible by {heads} attention heads")
    return layers, hidden, heads


def new_model(tokenizer, layers: int, hidden: int, heads: int, max_position: int = 512, dropout: float = 0.1):
    """A randomly initialised `BertForPreTraining` sized for `tokenizer`'s vocabulary."""
    from transformers import BertConfig, BertForPreTraining

    config = BertConfig(
        vocab_size=id_space(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        max_position_embeddings=max_position,
        pad_token_id=tokenizer.pad_token_id,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    return BertForPreTraining(config)


def continued_model(path: str, tokenizer, tokenizer_source: str) -> tuple[nn.Module, list[str]]:
    """`BertForPreTraining` from an existing encoder folder; returns it and the head weights it lacked.

    Sentence-embedding models (all-MiniLM-L6-v2) ship the encoder only: their MLM and NSP heads
    start fresh (the MLM decoder is tied to the word embeddings, so only a small transform is new).
    """
    from transformers import BertForPreTraining

    from bertx.models.encoder import check_encoder_folder

    config = check_encoder_folder(path)
    if config.get("model_type") != "bert":
        raise BertxError(f"{path}: pretraining supports model_type 'bert' (this folder is {config.get('model_type')!r})")
    if id_space(tokenizer) > config["vocab_size"]:
        raise BertxError(
            f"{tokenizer_source}: the tokenizer has {id_space(tokenizer)} tokens but the model {path} has "
            f"{config['vocab_size']} embeddings; use the tokenizer the model was trained with"
        )
    from bertx.models.encoder import without_load_report

    # transformers prints a load report of the missing head weights; the recipe says it in one line instead.
    with without_load_report():
        model, info = BertForPreTraining.from_pretrained(path, output_loading_info=True)
    return model, sorted(info.get("missing_keys", []))


def check_vocabulary(model: nn.Module, tokenizer, source: str) -> None:
    """The tokenizer's ids must index the model's embedding table."""
    size = model.config.vocab_size
    if id_space(tokenizer) > size:
        raise BertxError(f"{source}: the tokenizer has {id_space(tokenizer)} tokens, more than the model's {size} embeddings")


@dataclass
class PretrainingLosses:
    mlm_sum: torch.Tensor  # summed cross-entropy over masked positions (the recipe normalises it)
    mlm_count: torch.Tensor  # masked positions
    mlm_correct: torch.Tensor  # masked positions predicted right
    sentence_loss: torch.Tensor | None  # mean NSP/SOP cross-entropy
    sentence_correct: torch.Tensor | None
    sentence_count: int

    @property
    def mlm_loss(self) -> torch.Tensor:
        return self.mlm_sum / self.mlm_count.clamp(min=1)


class PretrainingObjective(nn.Module):
    """MLM (+ NSP/SOP) losses of a `BertForPreTraining`, with vocabulary scores for masked positions only.

    The MLM loss is returned as a sum so the recipe can divide by the masked count of the whole global
    batch: every masked token then weighs the same however the batch is split into processes and
    micro-batches. Wrapping the model in a module keeps one `forward`, so data parallelism (DDP) sees
    every use of the weights.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids, labels, next_sentence_label=None, heads_only: bool = False) -> PretrainingLosses:
        """`heads_only`: the encoder's outputs are detached, so only the heads learn (head warm-up)."""
        bert, heads = self.model.bert, self.model.cls
        out = bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        picked = labels != -100  # (B, T)
        hidden = out.last_hidden_state[picked]  # (M, H): masked positions only
        pooled = out.pooler_output
        if heads_only:
            hidden, pooled = hidden.detach(), None if pooled is None else pooled.detach()
        targets = labels[picked]  # (M,)
        scores = heads.predictions(hidden)  # (M, V)
        mlm_sum = F.cross_entropy(scores.float(), targets, reduction="sum")
        mlm_correct = (scores.argmax(-1) == targets).sum()
        sentence_loss, sentence_correct, count = None, None, 0
        if next_sentence_label is not None:
            pair_scores = heads.seq_relationship(pooled)  # (B, 2)
            sentence_loss = F.cross_entropy(pair_scores.float(), next_sentence_label)
            sentence_correct = (pair_scores.argmax(-1) == next_sentence_label).sum()
            count = len(next_sentence_label)
        return PretrainingLosses(mlm_sum, picked.sum(), mlm_correct, sentence_loss, sentence_correct, count)


class MLMHead(nn.Module):
    """A BERT MLM head over any encoder's hidden states, its decoder tied to the encoder's word
    embeddings: the auxiliary masked-LM loss during fine-tuning (`bertx.training.aux_mlm`)."""

    def __init__(self, config, word_embeddings: nn.Embedding):
        super().__init__()
        from transformers.models.bert.modeling_bert import BertLMPredictionHead

        self.head = BertLMPredictionHead(config)
        # BERT's initialisation (plain nn.Linear defaults would start the bias at random values).
        nn.init.normal_(self.head.transform.dense.weight, std=getattr(config, "initializer_range", 0.02))
        nn.init.zeros_(self.head.transform.dense.bias)
        nn.init.zeros_(self.head.decoder.bias)
        self.head.decoder.weight = word_embeddings.weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.head(hidden)
