"""Stage 1 of a plan: what the data is and what training costs on this machine.

train / dev / unlabelled files -> examples, labels and their balance, tokens per example (percentiles)
    -> max_length: the 95th percentile rounded up to 16 (32..256), unless the plan's data block sets it
the first encoder on batches of the lengths the stages will train on -> seconds per sequence at each
    length, training step and forward pass -> what every later stage will cost (`costs.py`)
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from bertx.config.plan import PlanConfig
from bertx.recipes.plan.inputs import read_task_file
from bertx.models.encoder import load_tokenizer, resolve_model_path

MAX_PLANNED_LENGTH = 256  # longer inputs are truncated: a plan on 2 cores cannot afford quadratic attention beyond


def encoder_path(name: str) -> str:
    """A candidate encoder as a folder ('default': the packaged MiniLM)."""
    return resolve_model_path(None if name == "default" else name)


def profile_data(config: PlanConfig, inputs: dict) -> dict:
    """Counts, labels, lengths and the chosen max_length of the plan's data (no model is run)."""
    tokenizer = load_tokenizer(encoder_path(config.encoders[0]))
    train_rows, labels, lengths = _read(config, inputs["train"], tokenizer)
    dev_rows, dev_labels, dev_lengths = _read(config, inputs["dev"], tokenizer)
    check_labels(config, inputs, labels, dev_labels)
    unlabelled_lines = sum(_count_lines(Path(p)) for p in inputs["unlabelled"])
    percentiles = {f"p{q}": int(np.percentile(lengths, q)) for q in (50, 90, 95, 99)} | {"max": int(max(lengths))}
    dev_p95 = int(np.percentile(dev_lengths, 95))
    if "max_length" in config.data.model_fields_set:
        max_length, why = config.data.max_length, "set in the plan's data block"
    else:
        # The dev file stands for what the model will see: training phrases may be shorter (SST-2's are).
        longest = max(percentiles["p95"], dev_p95)
        max_length = int(min(MAX_PLANNED_LENGTH, max(32, 16 * -(-longest // 16))))
        why = (
            f"95th percentile of training and dev lengths ({percentiles['p95']} and {dev_p95} tokens) rounded up to 16, "
            f"within 32..{MAX_PLANNED_LENGTH}"
        )
    truncated = sum(n > max_length for n in lengths) / len(lengths)
    profile = {
        "task": config.task,
        "train_examples": train_rows,
        "dev_examples": dev_rows,
        "unlabelled_lines": unlabelled_lines,
        "lengths": percentiles,
        "dev_p95": dev_p95,
        "mean_length": round(float(np.mean(lengths)), 1),
        "length_quantiles": length_quantiles(lengths),
        "dev_length_quantiles": length_quantiles(dev_lengths),
        "mean_length_at_max": round(float(np.mean(np.minimum(lengths, max_length))), 1),
        "dev_mean_length": round(float(np.mean(np.minimum(dev_lengths, max_length))), 1),
        "max_length": max_length,
        "max_length_reason": why,
        "truncated_share": round(truncated, 4),
        "tokenize_ms": tokenizer_ms(config, inputs["dev"], tokenizer),
        "vocab_size": len(tokenizer),
    }
    profile.update(language_check(config, inputs["train"], tokenizer))
    if inputs.get("report") and inputs["report"] != inputs["dev"] and inputs.get("report_role") != "test file":
        profile["report_examples"] = _read(config, inputs["report"], tokenizer)[0]  # never the test file: read at the end
    if labels:
        counts = Counter(labels)
        profile["labels"] = dict(counts.most_common())
        profile["smallest_class"] = min(counts.values())
        profile["balance"] = round(min(counts.values()) / max(counts.values()), 3)
    return profile


def check_labels(config: PlanConfig, inputs: dict, train_labels: list[str], dev_labels: list[str]) -> None:
    """Labels a plan cannot learn from, refused before any training, naming the user's own files: one class
    only, or dev labels that training never shows (a model cannot predict them)."""
    from bertx.errors import BertxError

    if config.task not in ("classification", "pair-classification"):
        return
    source = inputs.get("draws", {}).get("source_train", inputs["train"])
    seen = set(train_labels)
    if len(seen) < 2:
        raise BertxError(
            f"{source}: the plan's training examples hold one class only ({', '.join(sorted(seen)) or 'none'}); a classifier needs at least two"
        )
    unseen = sorted(set(dev_labels) - seen)
    if unseen:
        dev = config.resolve(config.dev) if config.dev else source
        raise BertxError(f"{dev}: dev labels never seen in the plan's training examples: {', '.join(unseen[:5])}; the model cannot predict them")


FOREIGN_PIECES_PER_WORD = 1.4  # the encoder's own language: 1.06-1.12 here (SST-2, Amazon reviews, CoNLL); Portuguese 1.89


def language_check(config: PlanConfig, path: str, tokenizer, sample: int = 2000) -> dict:
    """Word pieces per word of the training text under the encoder's tokenizer: an encoder spells its own
    language in about 1.1 pieces per word and another one in many more, broken into fragments that carry
    little meaning. Past FOREIGN_PIECES_PER_WORD the text is taken as another language (the plan then gives
    the encoder the text's word pieces before adapting it)."""
    from bertx.models.vocab_transfer import words_and_pieces

    texts = texts_of(config.task, path, config.data, sample)
    words, pieces, _ = words_and_pieces(tokenizer, texts)
    ratio = round(pieces / max(1, words), 3)
    return {"pieces_per_word": ratio, "foreign_text": ratio >= FOREIGN_PIECES_PER_WORD}


def texts_of(kind: str, path: str, data, limit: int, pairs: bool = True) -> list[str]:
    """The first `limit` texts of a labelled file of task `kind` read with the `data` options: a tagged file's
    sentences, a QA file's questions, a sequence file's texts (and, with `pairs`, their second texts)."""
    if kind == "ner":
        from bertx.data.conll import read_tagged

        return [" ".join(s.words) for s in read_tagged(path, limit=limit)]
    if kind == "qa":
        from bertx.data.squad import read_qa

        return [e.question for e in read_qa(path, limit=limit)]
    from bertx.data.examples import read_examples
    from bertx.tasks import get_task

    examples, _ = read_examples(path, get_task(kind), data.text_column, data.text_pair_column, data.label_column, data.label_separator, limit=limit)
    return [t for e in examples for t in ((e.text, e.text_pair) if pairs else (e.text,)) if t]


def length_quantiles(lengths: list[int], count: int = 21) -> list[float]:
    """`count` evenly spaced quantiles of a length distribution (min to max): what costs are averaged over."""
    return [round(float(q), 1) for q in np.quantile(np.asarray(lengths, dtype=float), np.linspace(0, 1, count))]


def probe_lengths(mean_length: float, longest: int) -> list[int]:
    """The lengths the probe times: the inputs' mean, 64 and 128 where shorter than the longest input any
    stage trains on (the target's max_length, a source's), and that longest (rounded up to 16)."""
    top = int(min(MAX_PLANNED_LENGTH, 16 * -(-longest // 16)))
    mean = int(min(top, max(16, mean_length)))
    return sorted({n for n in (mean, 64, 128) if n <= top} | {top})


def probe_points(model_path: str, lengths: list[int], main: int, precision: str) -> dict:
    """`probe` at each length: seconds per sequence at each (`points`), and the figures at `main`."""
    rows = {n: probe(model_path, n, precision) for n in lengths}
    points = [{"length": n, "train_s": r["train_s_per_token"] * n, "infer_s": r["infer_s_per_token"] * n} for n, r in rows.items()]
    return {**rows[main], "points": points}


def tokenizer_ms(config: PlanConfig, path: str, tokenizer, inputs: int = 50) -> float:
    """Median milliseconds to tokenise one dev input: a floor under any model's single-input latency."""
    if config.task == "ner":
        from bertx.data.conll import read_tagged

        calls = [lambda s=s: tokenizer([s.words], is_split_into_words=True) for s in read_tagged(path, limit=inputs)]
    elif config.task == "qa":
        from bertx.data.squad import read_qa

        calls = [lambda e=e: tokenizer([e.question], [e.context]) for e in read_qa(path, limit=inputs)]
    else:
        from bertx.data.examples import read_examples
        from bertx.tasks import get_task

        data = config.data
        examples, _ = read_examples(
            path, get_task(config.task), data.text_column, data.text_pair_column, data.label_column, data.label_separator, limit=inputs
        )
        calls = [lambda e=e: tokenizer([e.text], None if e.text_pair is None else [e.text_pair]) for e in examples]
    times = []
    for call in calls:
        start = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - start))
    return round(statistics.median(times), 3) if times else 0.0


def _read(config: PlanConfig, path: str, tokenizer) -> tuple[int, list[str], list[int]]:
    """(examples, their labels (classification kinds) or entity types (NER), token lengths with special tokens)."""
    if config.task == "ner":
        sentences = read_task_file(config, path)
        encoded = tokenizer([s.words for s in sentences], is_split_into_words=True, verbose=False)["input_ids"]
        types = [tag[2:] for s in sentences for tag in (s.tags or []) if tag.startswith("B-")]
        return len(sentences), types, [len(ids) for ids in encoded]
    if config.task == "qa":
        examples = read_task_file(config, path)
        encoded = tokenizer([e.question for e in examples], [e.context for e in examples], verbose=False)["input_ids"]
        return len(examples), [], [len(ids) for ids in encoded]
    examples = read_task_file(config, path)
    texts = [e.text for e in examples]
    pairs = [e.text_pair for e in examples] if examples and examples[0].text_pair is not None else None
    encoded = tokenizer(texts, pairs, verbose=False)["input_ids"]
    labels = []
    if config.task in ("classification", "pair-classification"):
        labels = [str(e.label) for e in examples]
    elif config.task == "multilabel":
        labels = [str(part) for e in examples for part in (e.label or [])]
    return len(examples), labels, [len(ids) for ids in encoded]


def _count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())


def probe(model_path: str, length: int, precision: str, batch: int = 32, steps: int = 3) -> dict:
    """Seconds per token of a training step (forward, backward, AdamW) and of a forward pass, at `length`,
    measured on the encoder with a two-class head in the precision and with the dropout (none) training uses."""
    from transformers import AutoModelForSequenceClassification

    from bertx.models.encoder import without_load_report

    torch.manual_seed(0)
    with without_load_report():  # without dropout, as bertx fine-tunes: with it, attention leaves its fused kernel
        model = AutoModelForSequenceClassification.from_pretrained(
            model_path, num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
        )
    vocab = model.config.vocab_size
    ids = torch.randint(min(1000, vocab // 2), vocab, (batch, length))  # ordinary word pieces, past the special tokens
    labels = torch.randint(0, 2, (batch,))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    bf16 = precision == "bf16"
    times = []
    model.train()
    for step in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step:  # the first step warms up
            times.append(time.perf_counter() - start)
    train_s = statistics.median(times)
    model.eval()
    times = []
    with torch.inference_mode():
        for step in range(steps + 1):
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                model(input_ids=ids)
            if step:
                times.append(time.perf_counter() - start)
    infer_s = statistics.median(times)
    tokens = batch * length
    return {
        "length": length,
        "batch": batch,
        "precision": precision,
        "layers": model.config.num_hidden_layers,
        "train_s_per_token": train_s / tokens,
        "infer_s_per_token": infer_s / tokens,
        "train_tokens_per_s": round(tokens / train_s),
        "infer_tokens_per_s": round(tokens / infer_s),
    }
