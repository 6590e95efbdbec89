"""An auxiliary masked-LM loss on unlabelled text during fine-tuning.

The mixed objective of domain adaptation (UDALM-style): while the task head learns from labelled
source data, the shared encoder keeps modelling the target domain's text,

    loss = task loss + weight x MLM loss (masked positions of packed blocks of unlabelled text).

`TaskWithAuxMLM` puts a BERT MLM head (decoder tied to the word embeddings) next to the task model
and runs both in one `forward`, so data parallelism sees every use of the weights. Only the task
model is saved: the auxiliary head is a training device, not part of the result.

`AuxText` serves the MLM batches: the text is tokenised once into the memory-mapped cache and cut
into full blocks; the batch of step N is a pure function of (seed, N), so resumed runs see the same.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bertx.data.masking import MaskingSpec, mlm_batch
from bertx.data.pretrain_instances import build_instances
from bertx.data.token_cache import build_cache
from bertx.errors import BertxError
from bertx.models.pretraining import MLMHead


class TaskWithAuxMLM(nn.Module):
    def __init__(self, task_model: nn.Module, weight: float):
        super().__init__()
        self.task_model = task_model
        self.mlm_head = MLMHead(task_model.config, task_model.base_model.get_input_embeddings())
        self.weight = weight

    @property
    def encoder(self) -> nn.Module:
        """The task model's encoder, shared (a property, so the weights are registered once)."""
        return self.task_model.base_model

    def new_parameters(self) -> list[nn.Parameter]:
        """The head's own parameters (its decoder weight is the encoder's word-embedding matrix)."""
        shared = {id(p) for p in self.task_model.parameters()}
        return [p for p in self.mlm_head.parameters() if id(p) not in shared]

    def forward(self, mlm: dict | None = None, mlm_head_only: bool = False, **batch):
        """`mlm_head_only`: the MLM loss trains the new head alone (its input is detached) during its warm-up."""
        out = self.task_model(**batch)
        if mlm is not None:
            hidden = self.encoder(
                input_ids=mlm["input_ids"], attention_mask=mlm["attention_mask"], token_type_ids=mlm["token_type_ids"]
            ).last_hidden_state  # (B, T, H)
            picked = mlm["labels"] != -100
            masked = hidden[picked].detach() if mlm_head_only else hidden[picked]
            scores = self.mlm_head(masked)  # (M, V): masked positions only
            out["mlm_loss"] = F.cross_entropy(scores.float(), mlm["labels"][picked])
            out.loss = out.loss + self.weight * out["mlm_loss"]
        return out


class AuxText:
    """Masked-LM batches of unlabelled text, by step."""

    def __init__(
        self,
        paths: list[str],
        tokenizer,
        documents: str,
        max_length: int,
        batch_size: int,
        mlm_probability: float,
        whole_word: bool,
        seed: int,
        show_progress: bool = True,
    ):
        self.cache = build_cache(paths, tokenizer, documents, show_progress=show_progress)
        self.spec = MaskingSpec.from_tokenizer(tokenizer, mlm_probability, whole_word, source=paths[0])
        self.max_length, self.batch_size, self.seed = max_length, batch_size, seed
        self._epoch, self._instances = -1, np.zeros((0, 5), dtype=np.int64)
        self.per_epoch = len(self._epoch_instances(0))
        if self.per_epoch == 0:
            raise BertxError(f"{', '.join(paths)}: no text for the auxiliary masked-LM loss")

    def _epoch_instances(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._instances, _ = build_instances(self.cache, 0, self.cache.n_documents, self.max_length, "none", self.seed, epoch)
            self._epoch = epoch
        return self._instances

    def batch(self, step: int, rank: int = 0, world: int = 1) -> dict[str, torch.Tensor]:
        """This process's slice of step `step`'s MLM batch, masked."""
        start = step * self.batch_size
        epoch, offset = divmod(start, self.per_epoch)
        instances = self._epoch_instances(epoch)
        rows = instances[offset : offset + self.batch_size]
        if len(rows) < self.batch_size:  # wrap into the next pass over the text
            rows = np.concatenate([rows, self._epoch_instances(epoch + 1)[: self.batch_size - len(rows)]])
        rows = rows[rank::world]
        generator = torch.Generator().manual_seed(self.seed * 7_919 + step)
        return mlm_batch(self.cache.tokens, rows, self.spec, generator)
