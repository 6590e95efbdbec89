"""Students that are not transformers: a BiLSTM, a Kim-style CNN and a bag of embeddings, for sequence
tasks, and a BiLSTM or CNN tagger for NER.

All three read the teacher's own WordPiece ids, so nothing new is needed to read text, and may start
their embedding table from the teacher's word embeddings (projected onto their top principal
directions when the student's width is smaller): a second route for BERT's knowledge, besides the
teacher's outputs.

    ids (B, T) -> embedding (+ segment embedding) (B, T, E) -> encoder -> pooled (B, F) -> MLP head -> logits (B, C)
        bilstm  bidirectional LSTM, then [max; mean] over the tokens       F = 4 x hidden
        cnn     convolutions of several widths, ReLU, max over the tokens  F = widths x hidden
        bag     mean of the embeddings                                     F = E

A tagger (`per_token`) skips the pooling: the encoder's state at every token goes through the head,
so its logits are (B, T, C) like a transformer token classifier's, and bertx's constrained Viterbi
decodes them unchanged. A bag of embeddings sees no context, so it has no tagger.

Sentence pairs are read as the teacher packs them ([CLS] a [SEP] b [SEP]) with a learnt segment
embedding: the student reuses the teacher's tokenisation and its cached outputs example for example.

The part below the head (embeddings, segments, the BiLSTM or convolutions) is a module of its own,
`SmallEncoder`, the student's `body`: a multi-task student shares one under a head per task, as a
multi-task BERT shares its encoder.

A student folder holds `student.json` (the architecture and labels), `model.safetensors` and the
tokenizer. It is not a Hugging Face `from_pretrained` folder; bertx's loaders read it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import torch
from torch import nn
from bertx import runfolder

STUDENT_FILE = "student.json"
# A multi-task student's shared encoder (embeddings and BiLSTM/CNN) sits at the folder's top under this name, and
# each head's student.json (labels, per_token) beside its head weights: the top folder is not one student.
ENCODER_FILE = "small_encoder.json"
KINDS = ("bilstm", "cnn", "bag")
# The CNN's embedding width when none is asked for: the teacher's table projected onto its top 128 principal
# directions. Measured on SST-2 (benchmarks/distill/distill_other_networks.py), it trains 3x faster than the full 384
# (the embedding table is most of the parameters and of the optimiser's work) and predicts 2x faster.
DEFAULT_EMBEDDING = {"cnn": 128}


@dataclass
class SmallStudentConfig:
    """Everything needed to rebuild a student; saved as `student.json`."""

    kind: str
    vocab_size: int
    embedding_dim: int
    hidden: int
    layers: int
    kernel_sizes: list[int]
    dropout: float
    pad_id: int
    id2label: dict = field(default_factory=dict)  # int -> label name (the teacher's; LABEL_0 for regression)
    problem_type: Optional[str] = None
    num_labels: int = 2
    per_token: bool = False  # a tagger: one prediction per token (NER)

    @property
    def label2id(self) -> dict:
        return {name: i for i, name in self.id2label.items()}

    @property
    def hidden_size(self) -> int:  # what the distillation code asks of any student
        return self.hidden

    @property
    def num_hidden_layers(self) -> int:
        return self.layers

    def save_pretrained(self, folder: str | Path, name: str = STUDENT_FILE) -> None:
        data = asdict(self)
        data["id2label"] = {str(k): v for k, v in self.id2label.items()}
        runfolder.write_text(Path(folder) / name, json.dumps(data, indent=2) + "\n")

    @classmethod
    def from_folder(cls, folder: str | Path, name: str = STUDENT_FILE) -> "SmallStudentConfig":
        data = json.loads((Path(folder) / name).read_text(encoding="utf-8"))
        data["id2label"] = {int(k): v for k, v in data.get("id2label", {}).items()}
        return cls(**data)


class SmallEncoder(nn.Module):
    """The part of a small student below its head: embeddings (+ segments) and the BiLSTM or convolutions,
    giving every token's state. One is shared by the heads of a multi-task student."""

    def __init__(self, config: SmallStudentConfig):
        super().__init__()
        c = self.config = config
        self.embeddings = nn.Embedding(c.vocab_size, c.embedding_dim, padding_idx=c.pad_id)
        self.segments = nn.Embedding(2, c.embedding_dim)
        nn.init.zeros_(self.segments.weight)
        if c.kind == "bilstm":
            self.encoder = nn.LSTM(
                c.embedding_dim, c.hidden, num_layers=c.layers, bidirectional=True, batch_first=True, dropout=c.dropout if c.layers > 1 else 0.0
            )
        elif c.kind == "cnn":
            self.encoder = nn.ModuleList(nn.Conv1d(c.embedding_dim, c.hidden, k, padding=k // 2) for k in c.kernel_sizes)
        else:
            self.encoder = None
        self.dropout = nn.Dropout(c.dropout)

    @property
    def width(self) -> int:
        """The size of each token's state: 2H (BiLSTM), widths x H (CNN), E (bag)."""
        c = self.config
        return {"bilstm": 2 * c.hidden, "cnn": len(c.kernel_sizes) * c.hidden}.get(c.kind, c.embedding_dim)

    def set_attn_implementation(self, _name: str) -> None:
        """No attention here; the exporter asks every model for eager attention."""

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> torch.Tensor:
        """Every token's state: (B, T, width)."""
        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_id).long()
        x = self.embeddings(input_ids)  # (B, T, E)
        if token_type_ids is not None:
            x = x + self.segments(token_type_ids.clamp(max=1))
        x = self.dropout(x)
        if self.config.kind == "bag":
            return x
        if self.config.kind == "bilstm":
            # Packed, so the backward direction starts at each sentence's last real token, not at its padding.
            lengths = attention_mask.sum(1).clamp(min=1).cpu()
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            h, _ = nn.utils.rnn.pad_packed_sequence(self.encoder(packed)[0], batch_first=True, total_length=x.shape[1])
            return h
        x = x.transpose(1, 2)  # (B, E, T)
        # even widths pad one extra step, cut here
        return torch.cat([torch.relu(conv(x))[..., : input_ids.shape[1]] for conv in self.encoder], dim=1).transpose(1, 2)


class SequenceStudent(nn.Module):
    """A BiLSTM, CNN or bag-of-embeddings sequence classifier/regressor (or tagger) with HF-style inputs and
    outputs: a `SmallEncoder` (`body`, its base model) and a head that pools its states and classifies."""

    base_model_prefix = "body"

    def __init__(self, config: SmallStudentConfig):
        super().__init__()
        c = self.config = config
        if c.per_token and c.kind == "bag":
            raise ValueError("a bag of embeddings sees no context: it cannot tag tokens")
        self.body = SmallEncoder(c)
        # A tagger reads each token's state; a sequence head [max; mean] of the BiLSTM's, the max of the CNN's.
        features = {"bilstm": (2 if c.per_token else 4) * c.hidden}.get(c.kind, self.body.width)
        self.dropout = nn.Dropout(c.dropout)
        self.classifier = nn.Sequential(nn.Linear(features, c.hidden), nn.ReLU(), nn.Dropout(c.dropout), nn.Linear(c.hidden, c.num_labels))

    @property
    def base_model(self) -> nn.Module:
        return self.body

    def get_input_embeddings(self) -> nn.Embedding:
        return self.body.embeddings

    def set_attn_implementation(self, _name: str) -> None:
        """No attention here; the exporter asks every model for eager attention."""

    def pooled(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).to(states.dtype)  # (B, T, 1)
        mean = (states * mask).sum(1) / mask.sum(1).clamp(min=1)
        if self.config.kind == "bag":
            return mean  # (B, E)
        top = states.masked_fill(mask == 0, -1e4).amax(1)
        if self.config.kind == "cnn":
            return top  # (B, widths x H)
        return torch.cat([top, mean], dim=-1)  # (B, 4H)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, **_unused):
        from transformers.modeling_outputs import SequenceClassifierOutput, TokenClassifierOutput

        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_id).long()
        states = self.body(input_ids, attention_mask, token_type_ids)
        if self.config.per_token:
            logits = self.classifier(self.dropout(states))  # (B, T, C)
            loss = None
            if labels is not None:  # -100 marks the pieces that carry no tag
                loss = nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
            return TokenClassifierOutput(loss=loss, logits=logits)
        logits = self.classifier(self.dropout(self.pooled(states, attention_mask)))  # (B, C)
        loss = None
        if labels is not None:
            if self.config.problem_type == "regression":
                loss = nn.functional.mse_loss(logits.squeeze(-1), labels.float())
            elif self.config.problem_type == "multi_label_classification":
                loss = nn.functional.binary_cross_entropy_with_logits(logits, labels.float())
            else:
                loss = nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def save_pretrained(self, folder: str | Path, safe_serialization: bool = True) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(folder / "model.safetensors"))
        self.config.save_pretrained(folder)


def build_small_student(
    kind: str,
    teacher,
    embedding_dim: Optional[int],
    hidden: Optional[int],
    layers: Optional[int],
    kernel_sizes: list[int],
    dropout: float,
    init_embeddings: bool,
    pad_id: int,
    per_token: bool = False,
    tokenizers: Optional[tuple] = None,
) -> SequenceStudent:
    """A new student for the teacher's task and vocabulary (or, with `tokenizers` = (the student's, the
    teacher's), its own); its embeddings optionally from the teacher's."""
    t = teacher.config
    width = embedding_dim or min(DEFAULT_EMBEDDING.get(kind, t.hidden_size), t.hidden_size)
    own = tokenizers[0] if tokenizers else None
    config = SmallStudentConfig(
        kind=kind,
        vocab_size=len(own) if own is not None else t.vocab_size,
        embedding_dim=width,
        hidden=hidden or (300 if kind == "bilstm" else 256),
        layers=layers or 1,
        kernel_sizes=list(kernel_sizes),
        dropout=dropout,
        pad_id=own.pad_token_id if own is not None else pad_id,
        id2label={int(k): v for k, v in t.id2label.items()},
        problem_type=None if per_token else (t.problem_type or "single_label_classification"),
        num_labels=t.num_labels,
        per_token=per_token,
    )
    student = SequenceStudent(config)
    if init_embeddings:
        table = project(teacher.get_input_embeddings().weight.detach(), width)
        if own is not None:
            table = aligned_rows(table, own, tokenizers[1])
        with torch.no_grad():
            student.get_input_embeddings().weight.copy_(table)
    return student


def aligned_rows(table: torch.Tensor, own, teacher_tokenizer) -> torch.Tensor:
    """Rows for the student's own pieces, from the teacher's `table`: a piece the teacher also has keeps its
    row; any other, the mean of the rows of the teacher's pieces of its text ("##ing" read as "ing")."""
    teacher_vocab = teacher_tokenizer.get_vocab()
    pieces = sorted(own.get_vocab().items(), key=lambda item: item[1])
    missing = [piece.removeprefix("##") for piece, _ in pieces if piece not in teacher_vocab]
    read = iter(teacher_tokenizer(missing, add_special_tokens=False)["input_ids"]) if missing else iter(())
    rows = []
    for piece, _ in pieces:
        ids = [teacher_vocab[piece]] if piece in teacher_vocab else (next(read) or [teacher_tokenizer.unk_token_id])
        rows.append(table[ids].mean(0))
    return torch.stack(rows)


def project(table: torch.Tensor, width: int) -> torch.Tensor:
    """The embedding table itself, or its projection onto its `width` top principal directions (scaled
    to the original norm), when the student is narrower."""
    if width >= table.shape[1]:
        return table[:, :width] if width == table.shape[1] else nn.functional.pad(table, (0, width - table.shape[1]))
    centred = table - table.mean(0, keepdim=True)
    _, _, v = torch.pca_lowrank(centred, q=width, center=False)
    reduced = centred @ v[:, :width]  # (V, width)
    return reduced * (table.norm(dim=1).mean() / reduced.norm(dim=1).mean().clamp(min=1e-8))


def is_small_student(folder: str | Path) -> bool:
    return (Path(folder) / STUDENT_FILE).is_file()


def load_small_student(folder: str | Path) -> SequenceStudent:
    from safetensors.torch import load_file

    student = SequenceStudent(SmallStudentConfig.from_folder(folder))
    student.load_state_dict(_body_prefixed(load_file(str(Path(folder) / "model.safetensors"))))
    return student.eval()


def _body_prefixed(state: dict) -> dict:
    """Weights saved before the encoder became `body` (embeddings.*, segments.*, encoder.*) under their new names."""
    old = ("embeddings.", "segments.", "encoder.")
    return {("body." + k if k.startswith(old) else k): v for k, v in state.items()}


def is_small_encoder_folder(folder: str | Path) -> bool:
    """A multi-task folder whose shared encoder is a small student's (BiLSTM, CNN or bag)."""
    return (Path(folder) / ENCODER_FILE).is_file()


def save_small_encoder(body: SmallEncoder, folder: str | Path) -> None:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in body.state_dict().items()}, str(folder / "model.safetensors"))
    body.config.save_pretrained(folder, ENCODER_FILE)


def load_small_encoder(folder: str | Path) -> SmallEncoder:
    from safetensors.torch import load_file

    body = SmallEncoder(SmallStudentConfig.from_folder(folder, ENCODER_FILE))
    body.load_state_dict(load_file(str(Path(folder) / "model.safetensors")))
    return body.eval()


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
