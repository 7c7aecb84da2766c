"""Checkpoints of the original TIRG code (google/tirg `main.py`): import them, and export back.

`main.py` saved `{'it': iteration, 'opt': argparse.Namespace of its flags, 'model_state_dict':
...}` under the original module names. The vocabulary is not in the file: the original rebuilt
it at start-up from the training texts, numbering words in first-seen order (2019 code, which
the released checkpoints and the course-project forks use) or in sorted order (2021 code). So
an import rebuilds it from the same data in the order the user names, and refuses a vocabulary
whose size differs from the embedding's rows (TIRG issue #12: ids stop matching the words).
"""

from __future__ import annotations

import argparse
import logging
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from tirg.checkpoint import atomic_torch_save, load_checkpoint, make_checkpoint
from tirg.config import TrainConfig
from tirg.data import load_dataset
from tirg.errors import CheckpointError
from tirg.fileio import atomic_write
from tirg.models import ComposeModel, build_model
from tirg.text import UNKNOWN_TOKEN, Vocabulary, tokenize

logger = logging.getLogger(__name__)

ORIGINAL_MODELS = ("imgonly", "textonly", "concat", "tirg", "tirg_lastconv")
VOCABULARY_ORDERS = ("first-seen", "sorted")
# The original's data set names that differ from this package's loader names.
ORIGINAL_DATASET_NAMES = {"css3d": "css_original"}
EMBEDDING_KEY = "text_model.embedding_layer.weight"
IMAGE_FC_KEY = "img_model.fc.0.weight"
# Flags of the original `main.py`, written into an exported checkpoint's `opt`.
ORIGINAL_FLAGS = (
    "comment", "dataset", "dataset_path", "model", "embed_dim", "learning_rate", "learning_rate_decay_frequency",
    "batch_size", "weight_decay", "num_iters", "loss", "loader_num_workers",
)  # fmt: skip

# (this package's name, the original's name): a name ending in "." is a prefix, else a whole key.
_ENCODER_KEYS = (
    ("img_model.", "img_model."),
    ("img_model.fc.", "img_model.fc.0."),  # the original's fc is Sequential(Linear)
    ("text_model.embedding.", "text_model.embedding_layer."),
    ("text_model.lstm.", "text_model.lstm."),
    ("text_model.head.1.", "text_model.fc_output.1."),
    ("normalization_layer.scale", "normalization_layer.norm_s"),
)
_COMPOSER_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "imgonly": (),
    "textonly": (),
    # The original wraps the Sequential in a module, as attribute `m`.
    "concat": (("composer.", "composer.m."),),
    # The original's Sequentials start with a parameterless concatenation module, shifting indices by one.
    "tirg": (
        ("a", "a"),
        ("gated_feature_composer.0.", "gated_feature_composer.1."),
        ("gated_feature_composer.2.", "gated_feature_composer.3."),
        ("res_info_composer.0.", "res_info_composer.1."),
        ("res_info_composer.2.", "res_info_composer.3."),
        ("res_info_composer.4.", "res_info_composer.5."),
    ),
    "tirg_lastconv": (("a", "a"), ("mod2d.", "mod2d."), ("mod2d_gate.", "mod2d_gate.")),
}
# The original's learnable scale is a 1-element vector; this package's is a scalar.
_SCALE_KEY = "normalization_layer.scale"


def _rename(key: str, rules: Sequence[tuple[str, str]]) -> str | None:
    """Apply the longest matching rule (prefix or whole key); None if no rule matches."""
    best: tuple[str, str] | None = None
    for source, target in rules:
        matches = key.startswith(source) if source.endswith(".") else key == source
        if matches and (best is None or len(source) > len(best[0])):
            best = (source, target)
    return None if best is None else best[1] + key[len(best[0]) :]


def _rules(model_name: str, to_original: bool) -> list[tuple[str, str]]:
    pairs = [*_ENCODER_KEYS, *_COMPOSER_KEYS[model_name]]
    return pairs if to_original else [(original, native) for native, original in pairs]


def to_original_keys(state: dict[str, torch.Tensor], model_name: str) -> OrderedDict[str, torch.Tensor]:
    """This package's state dict of `model_name` under the original's parameter names."""
    rules = _rules(model_name, to_original=True)
    renamed = OrderedDict()
    for key, value in state.items():
        original = _rename(key, rules)
        if original is None:
            raise CheckpointError(f"parameter {key!r} of a {model_name!r} model has no counterpart in the original code")
        renamed[original] = value.reshape(1) if key == _SCALE_KEY else value
    return renamed


def from_original_keys(state: dict[str, torch.Tensor], model_name: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(the original state dict under this package's names, the original keys no rule maps)."""
    rules = _rules(model_name, to_original=False)
    renamed, unmapped = {}, []
    for key, value in state.items():
        native = _rename(key, rules)
        if native is None:
            unmapped.append(key)
        else:
            renamed[native] = value.reshape(()) if native == _SCALE_KEY else value
    return renamed, unmapped


@dataclass
class OriginalCheckpoint:
    """What a checkpoint written by the original `main.py` holds."""

    path: Path
    iteration: int
    options: dict[str, Any]  # the `opt` Namespace's attributes
    state: dict[str, torch.Tensor]
    vocabulary: list[str] | None  # present only in files this package exported

    @property
    def model_name(self) -> str:
        name = self.options.get("model")
        if name is None:
            raise CheckpointError(f"{self.path}: its opt names no model (opt.model)")
        if name not in ORIGINAL_MODELS:
            raise CheckpointError(
                f"{self.path} holds a model {name!r} (opt.model); the original models this package imports are {list(ORIGINAL_MODELS)}"
            )
        return name

    def tensor(self, key: str) -> torch.Tensor:
        if key not in self.state:
            raise CheckpointError(f"{self.path}: model_state_dict lacks {key!r}; is it a TIRG composition model?")
        return self.state[key]


def _unreadable(path: Path, error: Exception) -> CheckpointError:
    """A short reason; torch's own message for a refused global advises weights_only=False, exactly what not to do."""
    refused = re.search(r"GLOBAL ([\w.]+)", str(error))
    if refused:
        return CheckpointError(
            f"{path} is not a readable checkpoint: it names {refused.group(1)}, which is refused (a TIRG checkpoint holds"
            " only tensors, plain data and an argparse.Namespace); nothing in it was run"
        )
    lines = [line for line in str(error).splitlines() if line.strip()]
    detail = f"{type(error).__name__}: {lines[-1][:200]}" if lines else type(error).__name__
    return CheckpointError(f"{path} is not a readable checkpoint: not written by torch.save, or cut short ({detail})")


def read_original_checkpoint(path: str | Path) -> OriginalCheckpoint:
    """Read a `main.py` checkpoint; unpickling admits tensors, plain data and argparse.Namespace only."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a refused global, a truncated zip or pickle, a text file: torch raises many types
        raise _unreadable(path, error) from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, expected the dict of TIRG's main.py (it, opt, model_state_dict)")
    if data.get("format") == "tirg-checkpoint":
        raise CheckpointError(f"{path} is already a tirg checkpoint: use it directly (tirg eval, tirg train --pretrained_model)")
    missing = [key for key in ("opt", "model_state_dict") if key not in data]
    if missing:
        found = sorted(map(str, data))[:8]
        raise CheckpointError(f"{path} is not a checkpoint of TIRG's main.py: it lacks {missing} (keys found: {found})")
    opt, state = data["opt"], data["model_state_dict"]
    options = vars(opt) if isinstance(opt, argparse.Namespace) else opt
    if not isinstance(options, dict):
        raise CheckpointError(f"{path}: 'opt' is a {type(opt).__name__}, expected the argparse.Namespace of main.py's flags")
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise CheckpointError(f"{path}: 'model_state_dict' is not a dict of tensors")
    vocabulary = data.get("vocabulary")
    return OriginalCheckpoint(path, int(data.get("it", 0)), dict(options), dict(state), None if vocabulary is None else list(vocabulary))


def original_vocabulary(texts: Sequence[str], order: str) -> Vocabulary:
    """The vocabulary the original code built from `texts`: `<UNK>` = 0, then words by first
    appearance (2019 `add_text_to_vocab`) or in sorted order (2021 `build`); no rare-word cut."""
    if order == "sorted":
        return Vocabulary.build(texts)
    _check_order(order)
    # Punctuation is stripped by the tokenizer, so no token can collide with "<UNK>".
    return Vocabulary([UNKNOWN_TOKEN, *dict.fromkeys(token for text in texts for token in tokenize(text))])


def training_texts(dataset: str, dataset_path: str | Path, options: dict[str, str] | None = None) -> list[str]:
    """The train split's texts in the loader's order, as the original's `get_all_texts()` gave them."""
    if not options:
        return load_dataset(dataset, dataset_path, "train").texts()
    try:
        trainset = load_dataset(dataset, dataset_path, "train", **options)
    except TypeError:
        raise ValueError(f"the {dataset!r} loader does not accept the options {options} (--dataset_option)") from None
    return trainset.texts()


def model_from_original(original: OriginalCheckpoint) -> ComposeModel:
    """This package's model with the original's weights; its vocabulary is a placeholder of the embedding's size."""
    name = original.model_name
    embed_dim = int(original.tensor(IMAGE_FC_KEY).shape[0])
    if int(original.options.get("embed_dim", embed_dim)) != embed_dim:
        raise CheckpointError(f"{original.path}: opt.embed_dim is {original.options['embed_dim']} but {IMAGE_FC_KEY} has {embed_dim} rows")
    rows = int(original.tensor(EMBEDDING_KEY).shape[0])
    placeholder = Vocabulary([UNKNOWN_TOKEN, *(f"<{index}>" for index in range(1, rows))])
    model = build_model(name, placeholder, embed_dim)
    state, unmapped = from_original_keys(original.state, name)
    expected = model.state_dict()
    # Files from torch 0.4.0 lack BatchNorm's batch counter, which inference never reads.
    missing = [key for key in expected if key not in state and not key.endswith("num_batches_tracked")]
    unexpected = unmapped + [key for key in state if key not in expected]
    if missing or unexpected:
        missing_original = list(to_original_keys({key: expected[key] for key in missing}, name))
        raise CheckpointError(
            f"{original.path}: its weights are not those of the original {name!r} model (opt.model):"
            f" missing {missing_original[:5]}, unexpected {unexpected[:5]}"
        )
    for key, value in state.items():
        if value.shape != expected[key].shape:
            original_key = next(iter(to_original_keys({key: value}, name)))
            raise CheckpointError(
                f"{original.path}: {original_key} has shape {tuple(value.shape)}, this package's {name!r} model needs"
                f" {tuple(expected[key].shape)} (its text encoder has 512-d word embeddings and LSTM, like the original at --embed_dim 512)"
            )
    model.load_state_dict({**expected, **state})
    return model


def check_vocabulary(original: OriginalCheckpoint, vocabulary: Vocabulary, order: str, source: str) -> None:
    """Refuse a rebuilt vocabulary that cannot be the one the embedding's rows were trained on."""
    rows = int(original.tensor(EMBEDDING_KEY).shape[0])
    if len(vocabulary) != rows:
        raise CheckpointError(
            f"{original.path}: its word embedding has {rows} rows, but the vocabulary rebuilt from {source} has"
            f" {len(vocabulary)} tokens (<UNK> included). The texts differ from those it was trained on: another copy or"
            " version of the data (label files missing or added), another data set or split, or other loader options."
            " The original rebuilt its vocabulary from the data at start-up (TIRG issue #12), so a checkpoint fits only"
            " the label files it was trained with, listed in the same order; nothing was written"
        )
    if original.vocabulary is not None and original.vocabulary != vocabulary.tokens:
        position = next(i for i, (a, b) in enumerate(zip(original.vocabulary, vocabulary.tokens)) if a != b)
        raise CheckpointError(
            f"{original.path} lists the vocabulary its rows follow, and the one rebuilt from {source} in {order} order"
            f" differs at id {position} ({original.vocabulary[position]!r} vs {vocabulary.tokens[position]!r});"
            " try the other --vocabulary-order; nothing was written"
        )


def _check_order(order: str) -> None:
    if order not in VOCABULARY_ORDERS:
        raise ValueError(f"unknown vocabulary order {order!r} (--vocabulary-order); choose from {list(VOCABULARY_ORDERS)}")


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")


def import_checkpoint(
    src: str | Path,
    dst: str | Path,
    dataset_path: str | Path,
    vocabulary_order: str,
    dataset: str | None = None,
    dataset_options: dict[str, str] | None = None,
    texts: Sequence[str] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Convert a `main.py` checkpoint at `src` into a tirg checkpoint at `dst`; returns the checkpoint.

    The vocabulary is rebuilt from `texts`, by default the train split of `dataset` (default:
    the checkpoint's own, css3d read as css_original) at `dataset_path`. Everything is checked
    before `dst` is written, atomically, so a refused import leaves nothing there.
    """
    dst = Path(dst)
    _refuse_existing(dst, overwrite)
    _check_order(vocabulary_order)
    original = read_original_checkpoint(src)
    model = model_from_original(original)
    if dataset is None:
        dataset = str(original.options.get("dataset", ""))
        dataset = ORIGINAL_DATASET_NAMES.get(dataset, dataset)
    source = f"the {dataset} training texts at {dataset_path}"
    if texts is None:
        texts = training_texts(dataset, dataset_path, dataset_options)
    else:
        source = f"the {len(texts)} texts given"
    vocabulary = original_vocabulary(texts, vocabulary_order)
    check_vocabulary(original, vocabulary, vocabulary_order, source)
    model.vocabulary = vocabulary
    values = {**original.options, **(dataset_options or {})}
    values.update(dataset=dataset, dataset_path=str(dataset_path), model=original.model_name, embed_dim=model.embed_dim)
    config = TrainConfig.from_dict(values)
    checkpoint = make_checkpoint(model, original.model_name, asdict(config), original.iteration)
    checkpoint["imported_from"] = {"file": str(original.path), "vocabulary_order": vocabulary_order, "iteration": original.iteration}
    atomic_torch_save(checkpoint, dst)
    logger.info(
        "imported %s (%s, iteration %d, %d words in %s order) to %s",
        src, original.model_name, original.iteration, len(vocabulary), vocabulary_order, dst,
    )  # fmt: skip
    return checkpoint


def export_checkpoint(
    src: str | Path,
    dst: str | Path,
    vocabulary_order: str = "sorted",
    texts: Sequence[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the tirg checkpoint `src` in the layout of the original `main.py` (it, opt, model_state_dict).

    The embedding's rows are put in the order the original code will number the words when it
    rebuilds the vocabulary: sorted (2021 code) needs nothing else; first-seen (2019 code) needs
    the training `texts` in the loader's order. The file also lists that vocabulary, and uses
    torch's pre-1.6 format so the original's old torch versions can read it.
    """
    dst = Path(dst)
    _refuse_existing(dst, overwrite)
    _check_order(vocabulary_order)
    checkpoint = load_checkpoint(src)
    name = checkpoint["model_name"]
    if name not in ORIGINAL_MODELS:
        raise CheckpointError(f"{src} holds a {name!r} model; the original code has only {list(ORIGINAL_MODELS)}")
    config = TrainConfig.from_dict(checkpoint["config"])
    state = dict(checkpoint["model"])
    embedding = state["text_model.embedding.weight"]
    if embedding.shape[1] != config.embed_dim:
        raise CheckpointError(
            f"{src} has embed_dim {config.embed_dim}; the original sizes its word embeddings and LSTM by --embed_dim,"
            f" this package uses {embedding.shape[1]}, so only embed_dim {embedding.shape[1]} models map onto it"
        )
    stored = checkpoint["vocabulary"]
    if texts is not None:
        target = original_vocabulary(texts, vocabulary_order)
    elif vocabulary_order == "sorted":
        target = Vocabulary([UNKNOWN_TOKEN, *sorted(stored[1:])])
    else:
        raise ValueError(f"exporting in {vocabulary_order!r} order needs the training texts (--dataset_path)")
    if set(target.tokens) != set(stored):
        differing = sorted(set(target.tokens) ^ set(stored))[:5]
        raise CheckpointError(
            f"{src} was trained with {len(stored)} tokens, the training texts give {len(target)} (differing: {differing});"
            " the original code would rebuild another vocabulary from them"
        )
    row_of = {token: row for row, token in enumerate(stored)}
    state["text_model.embedding.weight"] = embedding[[row_of[token] for token in target.tokens]].contiguous()
    options = {flag: getattr(config, flag) for flag in ORIGINAL_FLAGS}
    options["dataset"] = {ours: theirs for theirs, ours in ORIGINAL_DATASET_NAMES.items()}.get(config.dataset, config.dataset)
    exported = {
        "it": int(checkpoint["iteration"]),
        "opt": argparse.Namespace(f="", **options),
        "model_state_dict": to_original_keys(state, name),
        "vocabulary": list(target.tokens),
    }
    atomic_write(dst, lambda f: torch.save(exported, f, _use_new_zipfile_serialization=False))
    logger.info("exported %s (%s) to %s in the original layout, words in %s order", src, name, dst, vocabulary_order)
    return dst
