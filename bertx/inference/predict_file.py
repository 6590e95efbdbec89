"""Predict a whole file: read texts (TSV/CSV/JSONL or plain lines), write JSONL predictions."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

from bertx.data.examples import read_examples
from bertx.data.readers import read_lines
from bertx.errors import DataError
from bertx.inference.predictor import Predictor


def read_texts(path: str, predictor: Predictor) -> tuple[list[str], Optional[list[str]]]:
    """Texts (and pairs) to predict. A `.txt` file holds one text per line; other formats use the
    columns the model was trained on, and a label column, if present, is ignored."""
    if Path(path).suffix.lower() == ".txt":
        texts = []
        for number, line in enumerate(read_lines(Path(path)), start=1):
            if not line.strip():
                raise DataError(path, number, "empty text")
            texts.append(line)
        return texts, None
    options = {**predictor.reading_options(), "label_column": None}
    examples, columns = read_examples(path, predictor.task, **options, require_label=False)
    pairs = [ex.text_pair for ex in examples] if columns.text_pair else None
    return [ex.text for ex in examples], pairs


def predict_file(model_dir: str, input_path: str, output_path: Optional[str] = None, batch_size: int = 128,
                 bf16: bool = False) -> int:
    """Predict every text of `input_path` and write JSONL to `output_path` (stdout if None).

    Returns:
        The number of predictions written.
    """
    predictor = Predictor.load(model_dir, bf16=bf16)
    texts, pairs = read_texts(input_path, predictor)
    results = predictor.predict(texts, pairs, batch_size=batch_size)
    handle = open(output_path, "w", encoding="utf-8") if output_path else sys.stdout
    try:
        for i, (text, result) in enumerate(zip(texts, results)):
            record = {"text": text}
            if pairs:
                record["text_pair"] = pairs[i]
            record.update(result)
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        if output_path:
            handle.close()
    return len(results)
