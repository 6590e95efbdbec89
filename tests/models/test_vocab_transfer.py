"""Vocabulary extension on the tiny BERT: old ids and pieces kept, new ones after them, embeddings (and a
tied MLM decoder) grown together, FVT `mean` rows equal to the hand-computed means, English unchanged,
the folder round-trips, and bad input is one line."""

from __future__ import annotations

import json
import random

import pytest
import torch
from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

from bertx.cli import main
from bertx.errors import BertxError
from bertx.models.vocab_transfer import old_split
from bertx.recipes.vocab import extend_vocab
from tests.conftest import toy_sentence

WORDS = ["obrigado", "filme", "muito", "bom", "ruim", "nao", "gostei", "historia", "atores", "ótimo"]


def write_new_language(path, n=400, seed=0):
    rng = random.Random(seed)
    path.write_text("\n".join(" ".join(rng.choices(WORDS, k=rng.randint(3, 8))) for _ in range(n)) + "\n", encoding="utf-8")
    return str(path)


def write_english(path, n=100, seed=1):
    rng = random.Random(seed)
    path.write_text("\n".join(toy_sentence(rng, rng.random() < 0.5) for _ in range(n)) + "\n", encoding="utf-8")
    return str(path)


def test_old_split_is_greedy_longest_match():
    vocab = {p: i for i, p in enumerate(["[UNK]", "fil", "f", "i", "l", "m", "e", "##me", "##m", "##e", "##il", "##f"])}
    assert old_split("filme", vocab) == ["fil", "##me"]
    assert old_split("##filme", vocab) == ["##f", "##il", "##me"]
    assert old_split("xyz", vocab) == ["[UNK]"]


def test_extend_keeps_old_ids_and_initialises_new_rows_from_old_pieces(tiny_bert, tmp_path):
    text, english = write_new_language(tmp_path / "pt.txt"), write_english(tmp_path / "en.txt")
    report = extend_vocab(tiny_bert, [text], 6, str(tmp_path / "ext"), reference=[english], vocab_size=200, log=lambda s: None)
    old_tok, new_tok = AutoTokenizer.from_pretrained(tiny_bert), AutoTokenizer.from_pretrained(tmp_path / "ext")
    old_vocab, new_vocab = old_tok.get_vocab(), new_tok.get_vocab()
    assert all(new_vocab[p] == i for p, i in old_vocab.items())  # every old piece keeps its id
    added = (tmp_path / "ext/added_pieces.txt").read_text().split()
    start = max(old_vocab.values()) + 1  # new ids follow the old ones
    assert len(added) == report["added"] == 6 and sorted(new_vocab[p] for p in added) == list(range(start, start + 6))
    sentence = open(english).readline().strip()
    assert new_tok(sentence).input_ids == old_tok(sentence).input_ids  # English the new pieces do not match: as before

    old, new = AutoModel.from_pretrained(tiny_bert), AutoModel.from_pretrained(tmp_path / "ext")
    old_rows, new_rows = old.get_input_embeddings().weight, new.get_input_embeddings().weight
    assert new_rows.shape[0] == start + 6 and torch.equal(new_rows[:start], old_rows)
    for piece in added:
        expected = old_rows[[old_vocab[p] for p in old_split(piece, old_vocab)]].mean(0)
        assert torch.allclose(new_rows[new_vocab[piece]], expected, atol=1e-6), piece
    figures = report["tokens_per_word"]
    assert figures[text]["after"] < figures[text]["before"] and figures[english]["after"] == figures[english]["before"]
    assert json.loads((tmp_path / "ext/vocab_report.json").read_text())["init"] == "mean"


def test_a_tied_mlm_decoder_grows_with_the_embeddings(tmp_path):
    from transformers import BertConfig, BertForMaskedLM

    from tests.conftest import make_tiny_bert

    base = make_tiny_bert(tmp_path / "base")
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig.from_pretrained(base)).save_pretrained(tmp_path / "mlm")
    AutoTokenizer.from_pretrained(base).save_pretrained(tmp_path / "mlm")
    report = extend_vocab(
        str(tmp_path / "mlm"), [write_new_language(tmp_path / "pt.txt")], 4, str(tmp_path / "ext"), init="random", vocab_size=200, log=lambda s: None
    )
    model = AutoModelForMaskedLM.from_pretrained(tmp_path / "ext")
    decoder = model.get_output_embeddings()
    assert report["mlm_head"] and decoder.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert decoder.weight.shape[0] == model.config.vocab_size == report["vocab_after"] and decoder.bias.shape[0] == report["vocab_after"]


def test_bad_input_is_one_line(tiny_bert, tmp_path, capsys):
    english = write_english(tmp_path / "en.txt")
    with pytest.raises(BertxError, match="--add 0: give a positive number"):
        extend_vocab(tiny_bert, [english], 0, str(tmp_path / "a"))
    with pytest.raises(BertxError, match="adds no new pieces"):  # the toy English words are all whole pieces already
        extend_vocab(tiny_bert, [english], 10, str(tmp_path / "b"), vocab_size=200, log=lambda s: None)
    assert (
        main(["vocab", "extend", "--model", tiny_bert, "--text", str(tmp_path / "missing.txt"), "--add", "5", "--output", str(tmp_path / "c")]) == 2
    )
    assert "missing.txt: text file not found" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_aligned_init_takes_each_new_piece_from_its_translation(tiny_bert, tmp_path):
    """Row-aligned pairs in which every English word has one made-up translation: each new piece's
    embedding comes out closest to the embedding of the word it translates."""
    from tests.conftest import NEGATIVE, NEUTRAL, POSITIVE

    rng = random.Random(4)
    english_words = sorted(set(POSITIVE + NEGATIVE + NEUTRAL))
    translate = {w: "zq" + w[::-1] + "xo" for w in english_words}
    en, other = [], []
    for _ in range(600):
        words = rng.sample(english_words, 4)
        en.append(" ".join(words))
        other.append(" ".join(translate[w] for w in words))
    (tmp_path / "en.txt").write_text("\n".join(en) + "\n")
    (tmp_path / "xx.txt").write_text("\n".join(other) + "\n")
    report = extend_vocab(
        tiny_bert,
        [str(tmp_path / "xx.txt")],
        8,
        str(tmp_path / "ext"),
        init="aligned",
        vocab_size=300,
        parallel=(str(tmp_path / "en.txt"), str(tmp_path / "xx.txt")),
        log=lambda s: None,
    )
    assert report["initialised_from_translations"] > 0
    old_vocab = AutoTokenizer.from_pretrained(tiny_bert).get_vocab()
    new_vocab = AutoTokenizer.from_pretrained(tmp_path / "ext").get_vocab()
    old_rows = AutoModel.from_pretrained(tiny_bert).get_input_embeddings().weight
    new_rows = AutoModel.from_pretrained(tmp_path / "ext").get_input_embeddings().weight
    english_rows = old_rows[[old_vocab[w] for w in english_words]]  # every toy word is a whole piece of the tiny vocabulary
    added = [w for w in english_words if translate[w] in new_vocab]
    assert len(added) >= 3
    for word in added:
        similarity = torch.nn.functional.cosine_similarity(new_rows[new_vocab[translate[word]]][None], english_rows)
        assert english_words[int(similarity.argmax())] == word, word
    with pytest.raises(BertxError, match="--init aligned needs --parallel"):
        extend_vocab(tiny_bert, [str(tmp_path / "xx.txt")], 8, str(tmp_path / "x"), init="aligned")
