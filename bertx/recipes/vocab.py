"""`bertx vocab extend`: an encoder with word pieces for a new language, ready for continued pretraining.

    model folder + new-language text -> the model's tokenizer retrained on the text (candidates) -> the
    N most useful pieces it lacks (`models/vocab_transfer.py`) -> tokenizer with them appended ->
    embeddings (and a tied MLM decoder) grown, new rows from the old pieces' mean or random ->
    output folder (weights, tokenizer, bertx_run.yaml) + vocab_report.json: tokens per word of every
    text and reference file before and after

The output is an ordinary encoder folder: `bertx pretrain --model DIR` continues masked-LM training on
both languages, `bertx finetune --model DIR` fine-tunes it, `from_pretrained` loads it.
"""

from __future__ import annotations

import json
import time
from itertools import islice
from pathlib import Path

from bertx import runfolder
from bertx.data.text_corpus import iter_text
from bertx.errors import BertxError
from bertx.models.encoder import check_encoder_folder, load_tokenizer, resolve_model_path, without_load_report
from bertx.models.vocab_transfer import (
    align_embeddings,
    aligned_rows,
    extended_tokenizer_json,
    grow_embeddings,
    useful_pieces,
    words_and_pieces,
)
from bertx.console import say

MAX_SENTENCES = 200_000  # enough text to rank pieces by; more only costs time


def has_mlm_head(folder: str) -> bool:
    """Whether the folder's weights include a masked-LM head (then it is kept, tied and grown)."""
    from safetensors import safe_open

    path = Path(folder) / "model.safetensors"
    if not path.is_file():
        return False
    with safe_open(str(path), framework="pt") as weights:
        return any(key.startswith("cls.predictions") for key in weights.keys())


def tokens_per_word(tokenizers: dict, paths: list[str], documents: str) -> dict[str, dict[str, float]]:
    """Per file and tokenizer: pieces per word of its first MAX_SENTENCES sentences (each file read once)."""
    result = {}
    for path in paths:
        sentences = list(islice(iter_text([path], documents), MAX_SENTENCES))
        result[path] = {}
        for name, tokenizer in tokenizers.items():
            words, pieces, _ = words_and_pieces(tokenizer, sentences)
            result[path][name] = round(pieces / max(words, 1), 4)
    return result


def align_from_parallel(encoder, tokenizer, extended, parallel: tuple[str, str], old_size: int, log) -> int:
    """Re-initialise the new pieces seen in the parallel text from the old pieces they translate to."""
    from bertx.data.text_corpus import read_documents

    source, target = ([" ".join(doc) for doc in read_documents([path], "line")] for path in parallel)
    if len(source) != len(target):
        raise BertxError(f"--parallel {parallel[0]} has {len(source)} rows but {parallel[1]} has {len(target)}; give row-aligned translations")
    log(f"[vocab] aligning new pieces over {len(source)} sentence pairs ...")
    source_ids = tokenizer(source, add_special_tokens=False)["input_ids"]
    target_ids = extended(target, add_special_tokens=False)["input_ids"]
    new_ids = list(range(old_size, encoder.get_input_embeddings().weight.shape[0]))
    rows = aligned_rows(source_ids, target_ids, new_ids, old_size, set(tokenizer.all_special_ids))
    return align_embeddings(encoder, rows)


def _checked(model: str, texts: list[str], add: int, output: str, init: str, reference, overwrite: bool, parallel) -> tuple[str, object]:
    """Every argument checked before any work, the output folder claimed for a vocabulary extension (and nothing
    this command reads): (the model's folder, its fast tokenizer)."""
    if add <= 0:
        raise BertxError(f"--add {add}: give a positive number of pieces to add")
    if init not in ("mean", "random", "aligned"):
        raise BertxError(f"--init {init!r}: choose mean, random or aligned")
    if (init == "aligned") != bool(parallel):
        raise BertxError("--init aligned needs --parallel SOURCE_FILE TARGET_FILE (row-aligned translations), and only it uses them")
    for path in [*texts, *(reference or []), *(parallel or [])]:
        if not Path(path).is_file():
            raise BertxError(f"{path}: text file not found")
    model = resolve_model_path(model)
    check_encoder_folder(model)
    runfolder.check_output_folder(Path(output), "vocabulary", overwrite, [model, *texts, *(reference or []), *(parallel or [])])
    tokenizer = load_tokenizer(model)
    if not getattr(tokenizer, "is_fast", False):
        raise BertxError(f"{model}: its tokenizer is not a fast (tokenizers) one; vocab extend needs tokenizer.json")
    return model, tokenizer


def _grown_encoder(model: str, mlm: bool, tokenizer, extended, old_vocab: dict, pieces: list[str], init: str, seed: int, parallel, log):
    """The encoder (with its MLM head when it has one) with a row per new piece, initialised as `init` says:
    (encoder, rows before, what the growth did)."""
    from transformers import AutoModel, AutoModelForMaskedLM

    with without_load_report():
        encoder = (AutoModelForMaskedLM if mlm else AutoModel).from_pretrained(model)
    rows_before = encoder.get_input_embeddings().weight.shape[0]
    grown = grow_embeddings(encoder, old_vocab, pieces, "random" if init == "random" else "mean", seed)
    if parallel:
        grown["initialised_from_translations"] = align_from_parallel(encoder, tokenizer, extended, parallel, rows_before, log)
    return encoder, rows_before, grown


def _candidates(model: str, tokenizer, texts: list[str], documents: str, vocab_size: int, add: int, log) -> list[tuple[str, int]]:
    """The pieces a tokenizer retrained on the new text uses that the old vocabulary lacks, most tokens saved
    first, at most `add`: [(piece, tokens saved)]."""
    sentences = list(islice(iter_text(texts, documents), MAX_SENTENCES))
    if not sentences:
        raise BertxError(f"{', '.join(texts)}: no text read")
    log(f"[vocab] retraining the tokenizer on {len(sentences)} sentences for candidates ...")
    retrained = tokenizer.train_new_from_iterator(sentences, vocab_size)
    _, _, counts = words_and_pieces(retrained, sentences)
    chosen = useful_pieces(tokenizer.get_vocab(), counts, add, set(tokenizer.all_special_tokens))
    if not chosen:
        raise BertxError(f"{', '.join(texts)}: the text adds no new pieces to {model}'s vocabulary (it spells it as well already)")
    return chosen


def _extended_tokenizer(tokenizer, pieces: list[str]):
    """The tokenizer with `pieces` added to its WordPiece vocabulary, its special tokens kept."""
    from tokenizers import Tokenizer

    special = {
        name: getattr(tokenizer, name)
        for name in ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
        if getattr(tokenizer, name, None) is not None
    }
    return type(tokenizer)(
        tokenizer_object=Tokenizer.from_str(extended_tokenizer_json(tokenizer, pieces)), model_max_length=tokenizer.model_max_length, **special
    )


def extend_vocab(
    model: str,
    texts: list[str],
    add: int,
    output: str,
    init: str = "mean",
    vocab_size: int = 30000,
    reference: list[str] | None = None,
    documents: str = "blank",
    seed: int = 0,
    overwrite: bool = False,
    parallel: tuple[str, str] | None = None,
    log=say,
) -> dict:
    """Add up to `add` pieces of the language of `texts` to the encoder in `model`; write it to `output`.

    Args:
        model: encoder folder (its tokenizer must be a fast WordPiece one).
        texts: text in the new language (plain text, or TSV/CSV/JSONL whose text columns are read).
        add: how many pieces to add at most.
        output: the new encoder folder.
        init: `mean` (each new piece from the mean of the old pieces that spell it), `random`, or `aligned`
            (from the old pieces it is translated by in `parallel`; pieces never seen there: `mean`).
        vocab_size: size of the retrained vocabulary the candidates come from.
        reference: text in the model's own language, whose tokenisation must not get worse (reported).
        documents: document layout of plain-text files (`blank`, `line`, `wikitext`).
        parallel: (model-language file, new-language file), row-aligned translations (one text per line,
            or TSV/CSV/JSONL rows), for `init="aligned"`.

    Returns:
        The report written to `output/vocab_report.json`.
    """
    model, tokenizer = _checked(model, texts, add, output, init, reference, overwrite, parallel)
    started, mlm = time.perf_counter(), has_mlm_head(model)
    chosen = _candidates(model, tokenizer, texts, documents, vocab_size, add, log)
    pieces = [piece for piece, _ in chosen]
    extended = _extended_tokenizer(tokenizer, pieces)
    encoder, rows_before, grown = _grown_encoder(model, mlm, tokenizer, extended, tokenizer.get_vocab(), pieces, init, seed, parallel, log)
    check = [*texts, *(reference or [])]
    report = {
        "model": model,
        "texts": texts,
        "reference": reference or [],
        "init": init,
        "requested": add,
        **grown,
        "vocab_before": rows_before,
        "vocab_after": encoder.get_input_embeddings().weight.shape[0],
        "mlm_head": mlm,
        "candidates_vocab_size": vocab_size,
        "tokens_per_word": tokens_per_word({"before": tokenizer, "after": extended}, check, documents),
        "top_pieces": [{"piece": p, "tokens_saved": s} for p, s in chosen[:30]],
        "seconds": round(time.perf_counter() - started, 1),
    }
    run_info = {"vocab_extend": {k: v for k, v in report.items() if k not in ("top_pieces", "tokens_per_word")}}
    reads = [Path(model), *map(Path, check), *map(Path, parallel or [])]
    files = {"vocab_report.json": json.dumps(report, indent=2, ensure_ascii=False) + "\n", "added_pieces.txt": "\n".join(pieces) + "\n"}
    runfolder.write_model_folder(Path(output), encoder, extended, run_info, overwrite, reads, kind="vocabulary", extra_files=files)
    return report
