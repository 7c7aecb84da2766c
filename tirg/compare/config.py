"""What a search comparison runs: the LSH settings, the recall cut-offs and the query samples."""

from __future__ import annotations

from dataclasses import dataclass, replace

from tirg.index.lsh import LSHConfig
from tirg.metrics import DEFAULT_KS

# The course project's setting under its own protocol (12 bits, one table, no probing, exact
# search only for an empty bucket), then bits x tables x probe radius under the project's
# protocol, the first of them the original's setting. Longer keys over many tables keep the
# candidate sets small while every true neighbour still gets many chances to collide; they
# are the settings on the measured front.
ORIGINAL_LSH = LSHConfig(n_bits=12, n_tables=1, probe_radius=0, protocol="original")
DEFAULT_LSH_GRID: tuple[LSHConfig, ...] = (
    ORIGINAL_LSH,
    LSHConfig(n_bits=12, n_tables=1, probe_radius=0),
    LSHConfig(n_bits=12, n_tables=1, probe_radius=2),
    LSHConfig(n_bits=8, n_tables=8, probe_radius=1),
    LSHConfig(n_bits=12, n_tables=16, probe_radius=1),
    LSHConfig(n_bits=12, n_tables=48, probe_radius=0),
    LSHConfig(n_bits=16, n_tables=32, probe_radius=1),
    LSHConfig(n_bits=16, n_tables=96, probe_radius=0),
    LSHConfig(n_bits=18, n_tables=128, probe_radius=0),
)


def lsh_grid(protocols: str = "both", original_bits: int = 12) -> tuple[LSHConfig, ...]:
    """The LSH rows to compare: "original" (the course project's protocol alone, at original_bits),
    "project" (the project's settings) or "both"."""
    original = replace(ORIGINAL_LSH, n_bits=original_bits)
    project = tuple(c for c in DEFAULT_LSH_GRID if c.protocol == "project")
    grids = {"original": (original,), "project": project, "both": (original, *project)}
    if protocols not in grids:
        raise ValueError(f"protocols={protocols!r} must be one of {sorted(grids)}")
    return grids[protocols]


def ks_up_to(k: int) -> tuple[int, ...]:
    """TIRG's recall cut-offs (1, 5, 10, 50, 100) below k, then k itself."""
    if k < 1:
        raise ValueError(f"k={k} must be >= 1")
    return (*(c for c in DEFAULT_KS if c < k), k)


@dataclass(frozen=True)
class CompareConfig:
    """What to compare and how often.

    n_repeats x n_queries: random query samples (without replacement, seeded by `seed`);
        bootstrap: draw with replacement instead (`compare_feature_cache` sets it, with n_queries
        the split's size, when the split has fewer than n_queries queries).
    ks: recall cut-offs; the deepest is k for every method, capped at the gallery size
        (minus each query's excluded source) by `run_comparison`.
    lsh: LSH settings; each sample draws their hyperplanes from (seed, sample index), so
        LSHConfig.seed is not used here. protocol="original" rows form the "lsh-original" family.
    faiss: include the FAISS peers (needs faiss-cpu); faiss_lsh_bits and ivf_probes set them.
    ivf_lists: IVF cells; None means about 4 sqrt(N).
    overlap_target: top-k overlap with exact search that the "best LSH" row must reach.
    """

    n_repeats: int = 5
    n_queries: int = 5000
    ks: tuple[int, ...] = DEFAULT_KS
    seed: int = 0
    lsh: tuple[LSHConfig, ...] = DEFAULT_LSH_GRID
    faiss: bool = True
    faiss_lsh_bits: tuple[int, ...] = (512, 2048)
    ivf_lists: int | None = None
    ivf_probes: tuple[int, ...] = (4, 16, 64)
    overlap_target: float = 0.95
    bootstrap: bool = False

    def __post_init__(self) -> None:
        if self.n_repeats < 1 or self.n_queries < 1:
            raise ValueError(f"n_repeats={self.n_repeats} and n_queries={self.n_queries} must be >= 1")
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"ks={self.ks} must be a non-empty tuple of positive cut-offs")
