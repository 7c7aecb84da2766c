import random

import torch

from tirg.text import UNKNOWN_TOKEN, TextLSTMEncoder, Vocabulary, tokenize


def test_tokenize_drops_non_ascii_lowercases_and_strips_punctuation():
    assert tokenize("Make the RED círcle, top-left!  big") == ["make", "the", "red", "crcle", "topleft", "big"]
    assert tokenize("  ") == []


def test_vocabulary_ids_do_not_depend_on_input_order():
    texts = ["add red circle to top-left", "remove small blue cube", "make it large", "add red cube"]
    shuffled = texts[:]
    random.Random(1).shuffle(shuffled)
    reversed_words = [" ".join(reversed(text.split())) for text in texts]
    first = Vocabulary.build(texts)
    assert Vocabulary.build(shuffled) == first
    assert Vocabulary.build(reversed_words) == first
    assert first.tokens[0] == UNKNOWN_TOKEN
    assert first.tokens[1:] == sorted(first.tokens[1:])


def test_unknown_and_empty_texts_map_to_unk():
    vocabulary = Vocabulary.build(["red circle"])
    assert vocabulary.encode("red banana") == [vocabulary.tokens.index("red"), 0]
    assert vocabulary.encode("") == [0]


def test_lstm_reads_the_last_real_token_regardless_of_padding():
    torch.manual_seed(0)
    encoder = TextLSTMEncoder(Vocabulary.build(["a b c d e"]), word_embed_dim=8, lstm_hidden_dim=8, out_dim=4).eval()
    alone = encoder(["a b"])
    padded = encoder(["a b", "a b c d e"])
    assert torch.allclose(alone[0], padded[0], atol=1e-6)
    assert not torch.allclose(padded[0], padded[1])
