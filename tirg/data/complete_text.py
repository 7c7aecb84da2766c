"""ComposeAE's complete-text queries (`--use_complete_text_query`), for any data set.

The query text becomes the full caption of the target image instead of the modification
("replace red with blue" -> "blue dress"). The original spelled this out per data set
(MIT-States: "<target adj> <noun>"; Fashion200k: the target caption); every loader here
fills `captions` with those full captions, so one rule covers them all.
"""

from __future__ import annotations

import copy
from dataclasses import replace

from tirg.data.base import RetrievalDataset


def complete_text_queries(dataset: RetrievalDataset) -> RetrievalDataset:
    """A shallow copy of `dataset` whose pair texts are `captions[target]` and query texts their target captions.

    The images, captions and every other field are shared with `dataset`, which is left as it was.
    """
    completed = copy.copy(dataset)
    completed.pairs = [replace(pair, text=dataset.captions[pair.target]) for pair in dataset.pairs]
    completed.queries = [replace(query, text=query.target_caption) for query in dataset.queries]
    return completed
