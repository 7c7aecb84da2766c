"""ComposeAE's complete-text queries (`--use_complete_text_query`), for any data set.

The query text becomes the full caption of the target image instead of the modification
("replace red with blue" -> "blue dress"). The original spelled this out per data set
(MIT-States: "<target adj> <noun>"; Fashion200k: the target caption); every loader here
fills `captions` with those full captions, so one rule covers them all.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from tirg.data.base import Pair, RetrievalDataset


def complete_text_queries(dataset: RetrievalDataset) -> RetrievalDataset:
    """A shallow copy of `dataset` whose pair texts are `captions[target]` and query texts their target captions.

    The images, captions and every other field are shared with `dataset`, which is left as it was.
    Loaders that draw pairs on the fly (Fashion200k, MIT-States) get their draws' texts replaced too.
    """
    completed = copy.copy(dataset)
    completed.pairs = [replace(pair, text=dataset.captions[pair.target]) for pair in dataset.pairs]
    # A partial of module-level code, not a closure, so the copy still pickles for loader workers.
    completed.training_pair = functools.partial(_complete_pair, dataset.training_pair, dataset.captions)
    completed.queries = [replace(query, text=query.target_caption) for query in dataset.queries]
    return completed


def _complete_pair(draw: Callable[[int, np.random.Generator], Pair], captions: Sequence[str], item: int, rng: np.random.Generator) -> Pair:
    pair = draw(item, rng)
    return replace(pair, text=captions[pair.target])
