"""Train a WordPiece vocabulary with BERT's special tokens and save it as an HF tokenizer folder.

The `tokenizers` library does the training; the text comes through bertx's reader, so binary or
broken files stop with the file and line, and WikiText's markup is undone as in pretraining. The
result is a `BertTokenizer` (BERT's normaliser, pre-tokeniser and `[CLS] A [SEP] B [SEP]` template)
built on the learnt vocabulary, so `AutoTokenizer.from_pretrained(DIR)` loads it anywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from bertx.data.text_corpus import DocumentMode, iter_text
from bertx.errors import BertxError
from bertx.runfolder import output_folder

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


TOKENIZER_FILES = {"tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"}
MODEL_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "bertx_run.yaml")


def check_tokenizer_output(output: Path, overwrite: bool) -> None:
    """A tokenizer is written only into a new or empty folder, or over another tokenizer with --overwrite;
    never into a model folder, whose weights would no longer match its vocabulary."""
    if output.exists() and not output.is_dir():
        raise BertxError(f"{output}: --output is an existing file, not a folder")
    if not output.is_dir() or not any(output.iterdir()):
        return
    names = {p.name for p in output.iterdir()}
    model = [name for name in MODEL_FILES if name in names]
    if model:
        raise BertxError(
            f"{output}: holds a model ({', '.join(model)}); a new tokenizer there would no longer match its weights; choose another --output"
        )
    if not names <= TOKENIZER_FILES:
        raise BertxError(f"{output}: folder is not empty ({', '.join(sorted(names - TOKENIZER_FILES)[:3])} ...); choose another --output")
    if not overwrite:
        raise BertxError(f"{output}: holds a tokenizer already; pass --overwrite to replace it or choose another --output")


def train_wordpiece(
    paths: list[str],
    output: str | Path,
    vocab_size: int = 30522,
    lowercase: bool = True,
    min_frequency: int = 2,
    documents: DocumentMode = "blank",
    show_progress: bool = True,
    overwrite: bool = False,
) -> dict:
    """Learn a WordPiece vocabulary from text files.

    Args:
        paths: plain-text files.
        output: folder to write (tokenizer.json, vocab.txt, tokenizer_config.json, ...).
        vocab_size: target vocabulary size, special tokens included.
        lowercase: lower-case and strip accents (uncased BERT) or keep case.
        min_frequency: pieces seen fewer times are not added.
        documents: how documents are laid out (only `wikitext` changes the text read).
        show_progress: show the tokenizers library's progress bar.
        overwrite: replace a tokenizer already in `output` (never a model folder).

    Returns:
        Figures of the result: vocabulary size, lines read.
    """
    from transformers import BertTokenizer

    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise BertxError(f"--vocab-size {vocab_size} is too small: at least the 5 special tokens and one piece")
    for path in paths:
        if not Path(path).is_file():
            raise BertxError(f"{path}: text file not found")
    output = Path(output)
    check_tokenizer_output(output, overwrite)
    lines = 0

    def counted():
        nonlocal lines
        for sentence in iter_text(paths, documents):
            lines += 1
            yield sentence

    vocab = wordpiece_vocab(counted(), vocab_size, lowercase, min_frequency, show_progress)
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=lowercase, strip_accents=lowercase)
    with output_folder(output, "tokenizer", overwrite, reads=paths) as folder:  # the one writer: whole or nothing
        tokenizer.save_pretrained(folder)
    return {"vocab_size": len(vocab), "sentences": lines, "lowercase": lowercase, "output": str(output)}


def wordpiece_vocab(texts: Iterable[str], vocab_size: int, lowercase: bool, min_frequency: int = 2, show_progress: bool = False) -> dict[str, int]:
    """A WordPiece vocabulary (piece -> id, BERT's special tokens first) learnt from texts by `tokenizers`,
    with BERT's normaliser and pre-tokeniser."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=lowercase, lowercase=lowercase)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        continuing_subword_prefix="##",
        show_progress=show_progress,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    return backend.get_vocab()


def wordpiece_tokenizer(texts: Iterable[str], vocab_size: int, lowercase: bool, min_frequency: int = 2):
    """A BERT tokenizer (in memory) on a WordPiece vocabulary learnt from texts: a student's own tokenizer."""
    from transformers import BertTokenizer

    vocab = wordpiece_vocab(texts, vocab_size, lowercase, min_frequency)
    return BertTokenizer(vocab=vocab, do_lower_case=lowercase, strip_accents=lowercase)
