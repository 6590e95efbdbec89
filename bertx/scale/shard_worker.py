"""One worker's job: a loaded bertx predictor turns a shard's rows into prediction records and writes them.

The records are those of `bertx predict` (the same predictors, the same column rules) plus the row's
`input` file and `row` number, so nothing downstream depends on the order shards finish in. A row that
cannot be read or predicted is returned as a bad row (file, row, problem); it never stops the shard.
The worker runs inside a Ray actor (one model load per actor) and can run in-process for tests.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Optional

from bertx.data.examples import Columns, column_text, find_columns
from bertx.errors import BertxError, DataError
from bertx.runfolder import write_bytes
from bertx.scale.corpus import Row, Shard, header, read_shard


def set_threads(threads: int) -> None:
    """Intra-op threads of this process's model (PyTorch and ONNX Runtime), before it is loaded."""
    import torch

    torch.set_num_threads(threads)
    os.environ["BERTX_ONNX_THREADS"] = str(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)


class Reading:
    """How a model folder reads a corpus file's rows: its task, and the columns its training run chose.
    Read from the folder's configs only, so the driver checks every file without loading the weights."""

    def __init__(self, model_dir: str):
        from bertx.inference.loading import folder_task
        from bertx.inference.predictor import reading_options

        from bertx.models.encoder import check_weights_readable

        self.task, run = folder_task(model_dir)
        check_weights_readable(Path(model_dir))  # the header only: a cut or foreign weights file is one line here
        if self.task.name == "qa":
            raise BertxError(f"{model_dir}: a qa model; corpus prediction (--engine ray) handles sequence tasks and ner")
        self.options = reading_options(run)
        self._columns: dict[str, tuple[list[str], Optional[Columns]]] = {}

    def columns(self, path: str, fmt: str) -> tuple[list[str], Optional[Columns]]:
        """The file's header and, for sequence tasks, the columns read as text and second text (found as
        `bertx predict` finds them)."""
        if path not in self._columns:
            names = header(path, fmt)
            chosen = None
            if self.task.name != "ner":
                if fmt == "text" and self.task.pair == "required":
                    raise DataError(path, None, f"a {self.task.name} model reads text pairs; give TSV, CSV, JSONL or Parquet with both text columns")
                if fmt != "text":
                    chosen = find_columns(
                        path, names, self.task, self.options["text_column"], self.options["text_pair_column"], label_column=None, require_label=False
                    )
            self._columns[path] = (names, chosen)
        return self._columns[path]


class ShardWorker:
    def __init__(
        self, model_dir: str, output: str, output_format: str = "jsonl", batch_size: int = 128, bf16: bool = False, threads: Optional[int] = None
    ):
        from bertx.inference.loading import load_trained
        from bertx.inference.records import predictor_for

        if threads:
            set_threads(threads)
        self.reading = Reading(model_dir)
        trained = load_trained(model_dir, device="cpu", bf16=bf16)
        self.task = trained.task
        inner = predictor_for(trained).inner
        self.entities = inner if self.task.name == "ner" else None
        self.sequences = None if self.entities else inner
        self.output, self.output_format, self.batch_size = Path(output), output_format, batch_size

    def columns(self, path: str, fmt: str) -> tuple[list[str], Optional[Columns]]:
        return self.reading.columns(path, fmt)

    def __call__(self, batch: dict) -> dict:
        """Ray Data's entry: a batch of shard descriptions (one per row) -> one result (JSON) per shard."""
        fields = list(Shard.__dataclass_fields__)
        results = []
        for i in range(len(batch["name"])):
            shard = Shard(**{f: (batch[f][i].item() if hasattr(batch[f][i], "item") else batch[f][i]) for f in fields})
            results.append(json.dumps(self.run(shard)))
        return {"result": results}

    def run(self, shard: Shard) -> dict:
        """Predict the shard and publish its output file; returns what the manifest records of it."""
        names, columns = self.columns(shard.path, shard.format)
        try:
            rows = read_shard(shard, names)
        except DataError as err:  # the input was cut or rewritten under the job: nothing of the shard is kept
            return {"name": shard.name, "error": f"{err}; rerun the job with --overwrite once the file is final"}
        records, bad = self.predict(shard, rows, columns)
        data = self._encode(records)
        target = self.output / f"{shard.name}.{self.output_format}"
        try:
            write_bytes(target, data)
        except OSError as err:
            return {"name": shard.name, "error": f"{target}: cannot write ({(err.strerror or str(err)).lower()})"}
        return {
            "name": shard.name,
            "input": shard.path,
            "first": shard.first,
            "count": shard.count,
            "predictions": len(records),
            "bad": bad,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }

    def predict(self, shard: Shard, rows: list[Row], columns: Optional[Columns]) -> tuple[list[dict], list[dict]]:
        bad = [{"input": shard.path, "row": r.number, "problem": r.problem} for r in rows if r.problem]
        good = []  # (row number, what the predictor reads, what the record shows)
        for row in rows:
            if row.problem:
                continue
            try:
                good.append((row.number, *self._inputs(row.content, columns)))
            except ValueError as err:
                bad.append({"input": shard.path, "row": row.number, "problem": str(err)})
            except DataError as err:  # the column rules of every file reader
                bad.append({"input": shard.path, "row": row.number, "problem": err.problem})
        try:
            outputs = self._predict([g[1] for g in good])
        except Exception:  # rows the predictor cannot take: found by halving, then the rest predicted as one batch
            refused = self._refused(good)
            bad += [{"input": shard.path, "row": good[i][0], "problem": f"cannot predict: {problem}"} for i, problem in refused.items()]
            good = [g for i, g in enumerate(good) if i not in refused]
            # One call over the rest, as if the bad rows were never there: a quantized model's outputs depend on
            # its batch (activation ranges), so only the same batches give the single-process bits.
            outputs = self._predict([g[1] for g in good]) if good else []
        records = [{"input": shard.path, "row": number, **shown, **output} for (number, _, shown), output in zip(good, outputs)]
        return records, sorted(bad, key=lambda b: b["row"])

    def _refused(self, good: list[tuple]) -> dict[int, str]:
        """Index -> problem of the rows the predictor raises on: halves that predict are cleared whole, so
        a few bad rows among thousands cost a few calls over the shard, not one call per row."""
        refused: dict[int, str] = {}

        def search(indices: list[int], failed: bool = False) -> None:
            if not failed:
                try:
                    self._predict([good[i][1] for i in indices])
                    return
                except Exception as err:
                    if len(indices) == 1:
                        refused[indices[0]] = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
                        return
            half = len(indices) // 2
            search(indices[:half])
            search(indices[half:])

        search(list(range(len(good))), failed=True)  # the whole shard has just failed
        return refused

    def _inputs(self, content, columns: Optional[Columns]) -> tuple[tuple, dict]:
        """(what the predictor reads, what the record shows) for one row; ValueError names the problem."""
        if self.entities is not None:
            if isinstance(content, str):
                return self._entity_text(content)
            tokens = content.get("tokens")
            if tokens is not None:
                if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) and t.strip() for t in tokens):
                    raise ValueError("'tokens' must be a non-empty list of non-empty strings")
                return ("tokens", tokens), {"tokens": tokens}
            return self._entity_text(content.get("text"))
        if isinstance(content, str):
            return ("text", content, None), {"text": content}
        text = column_text(None, None, content, columns.text)
        pair = column_text(None, None, content, columns.text_pair) if columns.text_pair else None
        return ("text", text, pair), {"text": text, **({"text_pair": pair} if columns.text_pair else {})}

    def _entity_text(self, text) -> tuple[tuple, dict]:
        if not isinstance(text, str) or not text.strip():
            raise ValueError("needs a non-empty 'text' (or a 'tokens' list)")
        if not self.entities.split_words(text):
            raise ValueError("the text holds no words")
        return ("entities", text), {"text": text}

    def _predict(self, inputs: list[tuple]) -> list[dict]:
        if self.entities is not None:
            texts = [(i, x[1]) for i, x in enumerate(inputs) if x[0] == "entities"]
            sentences = [(i, x[1]) for i, x in enumerate(inputs) if x[0] == "tokens"]
            out: list = [None] * len(inputs)
            found = self.entities.predict([t for _, t in texts], self.batch_size) if texts else []
            for (i, _), entities in zip(texts, found):
                out[i] = {"entities": entities}
            tagged = self.entities.tag([s for _, s in sentences], self.batch_size) if sentences else []
            for (i, _), (tags, _) in zip(sentences, tagged):
                out[i] = {"tags": tags}
            return out
        texts = [x[1] for x in inputs]
        pairs = [x[2] for x in inputs] if inputs and inputs[0][2] is not None else None
        return self.sequences.predict(texts, pairs, batch_size=self.batch_size)

    def _encode(self, records: list[dict]) -> bytes:
        if self.output_format == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            buffer = io.BytesIO()
            names = list(dict.fromkeys(k for r in records for k in r))  # every record's fields, not the first's only
            pq.write_table(pa.Table.from_pydict({k: [r.get(k) for r in records] for k in names}), buffer)
            return buffer.getvalue()
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
