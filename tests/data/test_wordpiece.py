"""Training a WordPiece tokenizer: BERT's special tokens, an HF folder, cased and uncased."""

from transformers import AutoTokenizer

from bertx.data.wordpiece import SPECIAL_TOKENS, train_wordpiece
from tests.recipes.test_pretrain import write_patterned_text


def test_trained_tokenizer_is_a_bert_tokenizer(tmp_path):
    text = write_patterned_text(tmp_path / "t.txt")
    result = train_wordpiece([text], tmp_path / "tok", vocab_size=120, lowercase=True, min_frequency=1, show_progress=False)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "tok")
    vocab = tokenizer.get_vocab()
    assert result["vocab_size"] == len(vocab) <= 120
    assert all(token in vocab for token in SPECIAL_TOKENS) and [vocab[t] for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    encoded = tokenizer("The FILM was great", "Unseenword")
    pieces = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    assert pieces[:4] == ["[CLS]", "the", "film", "was"] and pieces[-1] == "[SEP]"
    assert any(p.startswith("##") for p in pieces)  # an unseen word is spelled in pieces, not [UNK]
    assert encoded["token_type_ids"][-1] == 1


def test_cased_tokenizer_keeps_case(tmp_path):
    text = write_patterned_text(tmp_path / "t.txt")
    train_wordpiece([text], tmp_path / "tok", vocab_size=120, lowercase=False, min_frequency=1, show_progress=False)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert tokenizer.tokenize("The")[0] == "The"
