"""Random query samples: distinct queries, or bootstrap draws for a split smaller than a sample."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tirg.compare.config import CompareConfig


def repeat_seed(seed: int, repeat: int) -> int:
    """The hyperplane seed of sample `repeat`: independent streams for every (seed, repeat) pair."""
    return int(np.random.SeedSequence([seed, repeat]).generate_state(1)[0])


def draw_samples(n_available: int, n_queries: int, n_repeats: int, seed: int, bootstrap: bool = False) -> list[np.ndarray]:
    """n_repeats sorted samples of n_queries query rows each: distinct rows, or with `bootstrap` drawn
    with replacement (as the original drew), where a row may repeat."""
    if n_queries > n_available and not bootstrap:
        raise ValueError(f"n_queries={n_queries} is more than the {n_available} queries available (bootstrap=True draws with replacement)")
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(n_available, size=n_queries, replace=bootstrap)) for _ in range(n_repeats)]


def sampling_caption(n_repeats: int, n_queries: int, n_available: int, bootstrap: bool) -> str:
    """What a table's mean ± std is over, e.g. "mean ± std over 5 bootstrap samples of 808 queries (...)"."""
    if n_repeats == 1:
        how = "one sample"
    else:
        how = f"mean ± std over {n_repeats} {'bootstrap ' if bootstrap else ''}samples"
    drawn = "drawn with replacement" if bootstrap else "distinct queries drawn"
    return f"{how} of {n_queries:,} queries ({drawn} from the split's {n_available:,})"


def bootstrap_config(config: CompareConfig, n_available: int) -> CompareConfig:
    """The config for a split of `n_available` queries: with fewer queries than a sample holds, every sample
    would be the whole split (no spread), so each sample is a bootstrap of the split instead. A sample
    size equal to the split's is taken as asking for the whole split."""
    if n_available >= config.n_queries:
        return config
    return replace(config, n_queries=n_available, bootstrap=True)
