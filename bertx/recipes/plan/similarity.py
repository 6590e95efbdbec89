"""Which sources to fine-tune when fine-tuning all of them is too dear: ranked, before any is trained, by
how close their text is to the target's.

    target's training texts, each source's first 200 texts -> the plain encoder, mean-pooled and unit length
        -> each set's centroid -> cosine of each source's centroid with the target's (higher: closer text)

A proxy, not a transfer estimate: a source close in text is the usual helpful one (kitchen reviews are
helped by electronics more than by books), and the LogME ranking after fine-tuning still decides which of
the fine-tuned sources the teacher trains with.
"""

from __future__ import annotations

import numpy as np
import torch

from bertx.config import SourcesConfig, TaskEntry

SAMPLE = 200
LENGTH = 128


def source_texts(sources: SourcesConfig, entry: TaskEntry, limit: int = SAMPLE) -> list[str]:
    """The first `limit` texts of a source's training file (the sentences of a tagged one)."""
    from bertx.recipes.plan.profile import texts_of

    return texts_of(entry.kind, entry.files(sources.data_dir)[0][1], entry.data, limit, pairs=False)


def centroid(model, tokenizer, texts: list[str], batch: int = 32) -> np.ndarray:
    """Unit-length mean of the texts' unit-length mean-pooled embeddings."""
    from bertx.models.sentence_classifier import mean_pool

    rows = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch):
            encoded = tokenizer(texts[start : start + batch], truncation=True, max_length=LENGTH, padding=True, return_tensors="pt")
            hidden = model(**encoded).last_hidden_state  # (B, T, H)
            rows.append(torch.nn.functional.normalize(mean_pool(hidden, encoded["attention_mask"]), dim=-1))
    mean = torch.cat(rows).mean(0)  # (H,)
    return (mean / mean.norm().clamp(min=1e-9)).numpy()


def text_similarity(encoder: str, target: list[str], sources: dict[str, list[str]]) -> dict[str, float]:
    """Cosine of each source's text centroid with the target's, best first."""
    from transformers import AutoModel

    from bertx.models.encoder import load_tokenizer, without_load_report

    tokenizer = load_tokenizer(encoder)
    with without_load_report():
        model = AutoModel.from_pretrained(encoder).eval()
    goal = centroid(model, tokenizer, target[:SAMPLE])
    scores = {name: round(float(goal @ centroid(model, tokenizer, texts)), 4) for name, texts in sources.items() if texts}
    return dict(sorted(scores.items(), key=lambda item: -item[1]))
