from unlearn.data.sampling import EpochShuffle, Repeat


def test_order_depends_on_seed_and_epoch_only():
    a, b = EpochShuffle(10, seed=3), EpochShuffle(10, seed=3)
    assert list(a) == list(b) and sorted(a) == list(range(10))
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    b.set_epoch(1)
    assert list(a) == list(b)


def test_shards_cover_the_epoch_and_have_equal_length():
    shards = [EpochShuffle(7, seed=1, rank=r, world_size=2) for r in range(2)]
    for s in shards:
        s.set_epoch(4)
    parts = [list(s) for s in shards]
    assert len(parts[0]) == len(parts[1]) == len(shards[0]) == 4  # padded to 8: no rank waits on another
    assert set(parts[0]) | set(parts[1]) == set(range(7))
    whole = EpochShuffle(7, seed=1)
    whole.set_epoch(4)
    order = list(whole)
    assert parts[0] == order[0::2] and parts[1] == (order + order[:1])[1::2]
    # the padding alone is a Repeat, and only it: the last index of rank 1 is the first of the order again
    assert [type(i).__name__ for i in parts[1]] == ["int"] * 3 + ["Repeat"] and parts[1][-1] == order[0]
    assert not any(isinstance(i, Repeat) for i in parts[0] + list(whole))


def test_a_repeat_is_read_without_labels_and_stays_one_when_shifted():
    from unlearn.data.collate import IGNORE, Example
    from unlearn.data.sampling import UnlabelledRepeats, shifted

    ds = UnlabelledRepeats([Example([5, 6, 7], [IGNORE, 6, 7]), Example([8, 9], [IGNORE, 9])])
    assert ds[1] == Example([8, 9], [IGNORE, 9])
    assert ds[Repeat(1)] == Example([8, 9], [IGNORE, IGNORE])
    assert ds[Repeat(0)].input_ids == [5, 6, 7]  # the example itself, its labels gone
    assert shifted(3, 10) == 13 and type(shifted(3, 10)) is int
    assert shifted(Repeat(3), 10) == 13 and isinstance(shifted(Repeat(3), 10), Repeat)


def test_draws_are_uniform_with_replacement_seeded_per_epoch_and_rank():
    from collections import Counter

    from unlearn.data.sampling import EpochDraws

    a, b = EpochDraws(3, 40, seed=5), EpochDraws(3, 40, seed=5)
    first = list(a)
    assert first == list(b) and len(first) == len(a) == 40 and set(first) <= {0, 1, 2}
    assert max(Counter(first).values()) > 1  # with replacement: 40 draws from 3 rows repeat
    a.set_epoch(1)
    assert list(a) != first  # anew each epoch, as CLEAR's __getitem__ draws on every access
    b.set_epoch(1)
    assert list(a) == list(b)  # a resumed run draws what the uninterrupted one did
    many = Counter(i for e in range(50) for i in (a.set_epoch(e), list(a))[1])
    assert all(abs(many[i] / 2000 - 1 / 3) < 0.05 for i in range(3))  # uniform
    ranks = [EpochDraws(3, 7, seed=5, rank=r, world_size=2) for r in range(2)]
    assert [len(r) for r in ranks] == [4, 4]  # ceil(7 / 2) each, as EpochShuffle shards 7 forget rows
    assert list(ranks[0]) != list(ranks[1])
