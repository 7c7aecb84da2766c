from collections import Counter

import pytest

from tirg.data import SeededBatchSampler, SourceGroupedBatchSampler


def test_seeded_batches_depend_only_on_seed_and_iteration():
    sampler = SeededBatchSampler(num_items=50, batch_size=8, seed=3)
    stream = iter(sampler)
    first_ten = [next(stream) for _ in range(10)]
    assert first_ten == [sampler.batch(i) for i in range(10)]
    resumed = iter(SeededBatchSampler(num_items=50, batch_size=8, seed=3, start_iteration=4))
    assert next(resumed) == first_ten[4]
    # Within an epoch (6 batches of 8 from 50) no item repeats.
    epoch = [i for batch in first_ten[:6] for i in batch]
    assert len(epoch) == len(set(epoch)) == 48
    assert SeededBatchSampler(50, 8, seed=4).batch(0) != first_ten[0]


def test_grouped_batches_hold_two_pairs_of_each_source():
    # Pair i has source i // 4 (4 modifications per source), except source 9 with one pair.
    sources = [i // 4 for i in range(36)] + [9]
    sampler = SourceGroupedBatchSampler(sources, batch_size=8, seed=0)
    for iteration in range(20):
        batch = sampler.batch(iteration)
        assert len(batch) == len(set(batch)) == 8
        per_source = Counter(sources[i] for i in batch)
        assert set(per_source.values()) == {2} and len(per_source) == 4
        assert 9 not in per_source  # a source with a single pair cannot supply two
        assert batch == SourceGroupedBatchSampler(sources, 8, seed=0, start_iteration=iteration).batch(iteration)
    with pytest.raises(ValueError, match="multiple of per_source"):
        SourceGroupedBatchSampler(sources, batch_size=7, seed=0)
