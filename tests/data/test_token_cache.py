"""The tokenised corpus cache, pretraining instances (packed blocks, NSP/SOP pairs) and MLM masking."""

import random

import numpy as np
import pytest
import torch

from bertx.data.masking import MaskingSpec, mask_tokens, mlm_batch
from bertx.data.pretrain_instances import build_instances
from bertx.data.token_cache import build_cache
from bertx.models.encoder import load_tokenizer
from tests.conftest import NEGATIVE, NEUTRAL, POSITIVE


def write_corpus(path, documents: int, seed: int = 0) -> list[list[str]]:
    """Blank-line separated documents of capitalised toy sentences; returns them."""
    rng = random.Random(seed)
    docs = []
    for _ in range(documents):
        sentences = []
        for _ in range(rng.randint(1, 6)):
            words = [rng.choice(NEUTRAL + POSITIVE + NEGATIVE) for _ in range(rng.randint(3, 9))]
            sentences.append(" ".join(words).capitalize() + ".")
        docs.append(sentences)
    path.write_text("\n\n".join(" ".join(s) for s in docs) + "\n", encoding="utf-8")
    return docs


@pytest.fixture
def corpus(tiny_bert, tmp_path):
    tokenizer = load_tokenizer(tiny_bert)
    docs = write_corpus(tmp_path / "corpus.txt", 40)
    cache = build_cache([str(tmp_path / "corpus.txt")], tokenizer, "blank", root=tmp_path / "cache")
    return tokenizer, docs, cache


def test_cache_round_trips_every_sentence(corpus):
    tokenizer, docs, cache = corpus
    assert cache.n_documents == len(docs)
    assert cache.meta["sentences"] == sum(len(d) for d in docs)
    for d, sentences in enumerate(docs):
        for k, sentence in enumerate(sentences):
            s = cache.documents[d] + k
            ids = cache.tokens[cache.sentences[s] : cache.sentences[s + 1]].tolist()
            assert ids == tokenizer(sentence, add_special_tokens=False)["input_ids"]
    assert isinstance(cache.tokens, np.memmap) and cache.tokens.dtype == np.uint16


def test_cache_is_reused_and_rebuilt_when_the_file_changes(corpus, tmp_path):
    tokenizer, _, cache = corpus
    again = build_cache([str(tmp_path / "corpus.txt")], tokenizer, "blank", root=tmp_path / "cache")
    assert again.folder == cache.folder
    write_corpus(tmp_path / "corpus.txt", 5, seed=9)
    changed = build_cache([str(tmp_path / "corpus.txt")], tokenizer, "blank", root=tmp_path / "cache")
    assert changed.folder != cache.folder and changed.n_documents == 5


def test_packed_blocks_are_full_disjoint_and_in_range(corpus):
    _, _, cache = corpus
    rows, _ = build_instances(cache, 0, cache.n_documents, 18, "none", seed=1, epoch=0)
    assert (rows[:, 1] - rows[:, 0] == 16).all() and (rows[:, 4] == -100).all()
    starts = np.sort(rows[:, 0])
    assert (np.diff(starts) == 16).all() and starts[0] >= 0 and starts[-1] + 16 <= cache.n_tokens
    again, _ = build_instances(cache, 0, cache.n_documents, 18, "none", seed=1, epoch=0)
    other, _ = build_instances(cache, 0, cache.n_documents, 18, "none", seed=1, epoch=1)
    assert (again == rows).all() and not np.array_equal(np.sort(other[:, 0]), starts)


def doc_of(cache, token: int) -> int:
    sentence = np.searchsorted(cache.sentences, token, side="right") - 1
    return int(np.searchsorted(cache.documents, sentence, side="right") - 1)


@pytest.mark.parametrize("task", ["sop", "nsp"])
def test_sentence_pairs(corpus, task):
    _, _, cache = corpus
    rows, _ = build_instances(cache, 0, cache.n_documents, 24, task, seed=3, epoch=0)
    assert len(rows) > 20
    assert ((rows[:, 1] - rows[:, 0]) + (rows[:, 3] - rows[:, 2]) <= 21).all()  # fits [CLS] A [SEP] B [SEP]
    assert ((rows[:, 1] > rows[:, 0]) & (rows[:, 3] > rows[:, 2])).all()
    labels = rows[:, 4]
    assert 0.25 < labels.mean() < 0.75  # about half are swapped / random
    for a0, a1, b0, b1, label in rows.tolist():
        same_doc = doc_of(cache, a0) == doc_of(cache, b0)
        if task == "sop":  # always one document; label 1: B comes before A
            assert same_doc and (b1 <= a0 if label else a1 <= b0)
        elif label == 0:  # NSP "is next": B follows A in the same document
            assert same_doc and a1 <= b0
        else:
            assert not same_doc


def test_masking_rates_specials_and_whole_words(tiny_bert):
    tokenizer = load_tokenizer(tiny_bert)
    spec = MaskingSpec.from_tokenizer(tokenizer, mlm_probability=0.15, whole_word=True)
    text = " ".join(["zebra", "film", "quiz"] * 300)  # "zebra" and "quiz" are spelled out in letter pieces
    ids = tokenizer([text] * 8, truncation=True, max_length=128, return_tensors="pt")["input_ids"]
    masked, labels = mask_tokens(ids, spec, torch.Generator().manual_seed(0))
    picked = labels != -100
    assert (labels[picked] == ids[picked]).all()
    assert not picked[:, 0].any() and not picked[:, -1].any()  # [CLS] / [SEP]
    rate = picked.float().mean().item()
    assert 0.10 < rate < 0.20
    became_mask = (masked[picked] == spec.mask_id).float().mean().item()
    kept = (masked[picked] == ids[picked]).float().mean().item()
    assert 0.7 < became_mask < 0.9 and 0.03 < kept < 0.2
    # whole words: a continuation piece is picked exactly when its word's first piece is
    continuation = spec.continuation[ids]
    assert continuation.any()
    follows = picked[:, 1:][continuation[:, 1:]]
    leads = picked[:, :-1][continuation[:, 1:]]
    assert (follows == leads).all()


def test_mlm_batch_layout(corpus):
    tokenizer, _, cache = corpus
    spec = MaskingSpec.from_tokenizer(tokenizer)
    rows, _ = build_instances(cache, 0, cache.n_documents, 24, "sop", seed=3, epoch=0)
    batch = mlm_batch(cache.tokens, rows[:6], spec, torch.Generator().manual_seed(1))
    a0, a1, b0, b1, label = rows[0].tolist()
    n = (a1 - a0) + (b1 - b0) + 3
    assert batch["attention_mask"][0].sum() == n
    assert batch["token_type_ids"][0, : a1 - a0 + 2].eq(0).all() and batch["token_type_ids"][0, a1 - a0 + 2 : n].eq(1).all()
    assert batch["next_sentence_label"].tolist() == rows[:6, 4].tolist()
    restored = torch.where(batch["labels"] != -100, batch["labels"], batch["input_ids"])[0, :n].tolist()
    assert restored == [
        tokenizer.cls_token_id,
        *cache.tokens[a0:a1].tolist(),
        tokenizer.sep_token_id,
        *cache.tokens[b0:b1].tolist(),
        tokenizer.sep_token_id,
    ]


def test_vocabulary_without_mask_is_refused(tmp_path):
    from transformers import BertTokenizerFast

    from bertx.errors import BertxError

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b"])}
    tokenizer = BertTokenizerFast(vocab=vocab, mask_token=None)
    with pytest.raises(BertxError, match=r"no MASK token"):
        MaskingSpec.from_tokenizer(tokenizer, source="tok/")
