"""TIRG's tokenizer, an order-independent vocabulary, and the LSTM text encoder."""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Iterable, Sequence

import torch
from torch import nn

UNKNOWN_TOKEN = "<UNK>"
_STRIP_PUNCTUATION = str.maketrans("", "", string.punctuation)


def tokenize(text: str) -> list[str]:
    """TIRG's tokenizer: drop non-ASCII, lowercase, strip punctuation, split on whitespace."""
    ascii_text = text.encode("ascii", "ignore").decode("ascii")
    return ascii_text.lower().translate(_STRIP_PUNCTUATION).split()


class Vocabulary:
    """Token ids for the text encoder; id 0 is `<UNK>`.

    Ids are assigned in sorted token order, so they depend only on the set of tokens,
    never on the order in which files or texts were read (TIRG issue #12 broke released
    checkpoints exactly that way). A checkpoint stores `tokens` and rebuilds from them.
    """

    def __init__(self, tokens: Sequence[str]):
        if not tokens or tokens[0] != UNKNOWN_TOKEN:
            raise ValueError(f"a vocabulary's first token must be {UNKNOWN_TOKEN!r}, got {list(tokens[:1])}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("vocabulary tokens must be unique")
        self.tokens: list[str] = list(tokens)
        self._ids = {token: i for i, token in enumerate(self.tokens)}

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 1) -> Vocabulary:
        counts = Counter(token for text in texts for token in tokenize(text))
        kept = sorted(token for token, count in counts.items() if count >= min_count and token != UNKNOWN_TOKEN)
        return cls([UNKNOWN_TOKEN, *kept])

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.tokens == other.tokens

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; an empty text encodes as one `<UNK>` so it still has a last token."""
        ids = [self._ids.get(token, 0) for token in tokenize(text)]
        return ids or [0]


class TextLSTMEncoder(nn.Module):
    """Embedding -> one-layer LSTM -> output at the last real token -> Dropout -> Linear."""

    name = "lstm"

    def __init__(
        self,
        vocabulary: Vocabulary,
        word_embed_dim: int = 512,
        lstm_hidden_dim: int = 512,
        out_dim: int = 512,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.vocabulary = vocabulary
        self.out_dim = out_dim
        self.embedding = nn.Embedding(len(vocabulary), word_embed_dim)
        self.lstm = nn.LSTM(word_embed_dim, lstm_hidden_dim, batch_first=True)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(lstm_hidden_dim, out_dim))

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        encoded = [self.vocabulary.encode(text) for text in texts]
        lengths = torch.tensor([len(ids) for ids in encoded])
        padded = torch.zeros(len(encoded), int(lengths.max()), dtype=torch.long)
        for row, ids in enumerate(encoded):
            padded[row, : len(ids)] = torch.tensor(ids)
        device = self.embedding.weight.device
        # On CPU the LSTM runs in float32 even under bfloat16 autocast (--amp): oneDNN has no bfloat16
        # LSTM on CPUs without AVX512-BF16 and refuses it, and the encoder is a small share of the time.
        with torch.autocast("cpu", enabled=False):
            outputs, _ = self.lstm(self.embedding(padded.to(device)))
        last = outputs[torch.arange(len(encoded), device=device), (lengths - 1).to(device)]
        return self.head(last)
