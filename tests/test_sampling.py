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
    assert ds[Repeat(1)] == Example([8, 9], [IGNORE, IGNORE], filler=True)  # flagged: no row of the global batch
    assert not ds[1].filler
    assert ds[Repeat(0)].input_ids == [5, 6, 7]  # the example itself, its labels gone
    assert shifted(3, 10) == 13 and type(shifted(3, 10)) is int
    assert shifted(Repeat(3), 10) == 13 and isinstance(shifted(Repeat(3), 10), Repeat)


def test_the_gradient_batches_flag_fillers_and_the_model_never_reads_the_flag():
    """NPO's method.npo_empty_rows=count counts rows with no label token, but never a shard's padding repeat: the
    gradient methods' batches flag those (and only where there are some), model_inputs drops the flag."""
    import torch

    from unlearn.data.collate import IGNORE, Example
    from unlearn.data.sampling import UnlabelledRepeats
    from unlearn.eval.scoring import model_inputs
    from unlearn.methods.gradient import unlearning_collate

    ds = UnlabelledRepeats([Example([5, 6, 7], [IGNORE, 6, 7]), Example([8, 9], [IGNORE, IGNORE])])
    plain = unlearning_collate([ds[0], ds[1]], 0)
    assert "filler" not in plain  # an empty row is no filler
    padded = unlearning_collate([ds[1], ds[Repeat(0)]], 0)
    assert padded["filler"].tolist() == [False, True]
    assert set(model_inputs(padded, "cpu")) == {"input_ids", "attention_mask"}
    assert torch.equal(padded["labels"][1], torch.full((3,), IGNORE))


def test_draws_are_uniform_with_replacement_seeded_per_epoch():
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


def test_draws_on_two_processes_are_the_one_processs_sharded_as_the_forget_order():
    """Each rank takes every W-th of the one process's draws, the padding an unlabelled Repeat: the draw at a global
    position pairs with the forget item there (EpochShuffle's shard) on any number of processes. Each rank drew
    its own from a rank-seeded generator until the thirty-first session."""
    from unlearn.data.sampling import EpochDraws, EpochShuffle, Repeat

    one = list(EpochDraws(50, 7, seed=5))
    ranks = [list(EpochDraws(50, 7, seed=5, rank=r, world_size=2)) for r in range(2)]
    assert ranks == [one[0::2], one[1::2] + [Repeat(one[0])]]
    assert isinstance(ranks[1][-1], Repeat) and not any(isinstance(i, Repeat) for i in ranks[0])
    forget = [list(EpochShuffle(7, seed=3, rank=r, world_size=2)) for r in range(2)]
    assert [len(f) for f in forget] == [len(d) for d in ranks]  # paired item for item, padding with padding
    assert [isinstance(i, Repeat) for i in forget[1]] == [isinstance(i, Repeat) for i in ranks[1]]


def test_random_shuffle_on_one_process_is_torchs_random_sampler():
    """The teaching loaders' shuffle must give the models taught with `shuffle=True` their weights back: the same
    batches over several epochs, and the same random state after (global, or the generator given)."""
    import torch
    from torch.utils.data import DataLoader

    from unlearn.data.sampling import RandomShuffle

    data = list(range(23))
    for seeded in (False, True):
        runs = []
        for ours in (False, True):
            torch.manual_seed(5)
            gen = torch.Generator().manual_seed(11) if seeded else None
            kw = {"sampler": RandomShuffle(len(data), gen)} if ours else {"shuffle": True}
            loader = DataLoader(data, batch_size=4, generator=gen, **kw)
            batches = [[b.tolist() for b in loader] for _ in range(3)]
            runs.append((batches, torch.get_rng_state(), gen.get_state() if seeded else None))
        (a, rng_a, gen_a), (b, rng_b, gen_b) = runs
        assert a == b and a[0] != a[1], seeded
        assert torch.equal(rng_a, rng_b) and (not seeded or torch.equal(gen_a, gen_b))


def test_placed_shard_hand_computed():
    from unlearn.data.sampling import Placed, placed_shard

    order = [5, 3, 8, 1, 0]
    rank0, rank1 = placed_shard(order, 0, 2), placed_shard(order, 1, 2)
    assert rank0 == [5, 8, 0] and rank1 == [3, 1, 5]
    assert [(i.before, i.after) for i in rank0] == [((), ()), ((3,), ()), ((1,), ())]
    assert [(i.before, i.after) for i in rank1[:2]] == [((5,), ()), ((8,), (0,))]
    assert isinstance(rank1[2], Repeat) and not isinstance(rank1[2], Placed)
    import pickle

    back = pickle.loads(pickle.dumps(rank1[1]))  # as a DataLoader worker receives it
    assert back == 1 and (back.before, back.after) == ((8,), (0,))


class _Drawing:
    """Draws on every access from an rng, as an augmented portrait does; banks of several sizes, so draws take
    different amounts of the random stream."""

    def __init__(self, n: int):
        import random

        self.rng, self.sizes = random.Random(7), [1 + i % 4 for i in range(n)]

    def __len__(self):
        return len(self.sizes)

    def __getitem__(self, i):
        return int(i), self.rng.randrange(self.sizes[i])

    def skip(self, i):
        self.rng.randrange(self.sizes[i])


def test_each_rank_draws_what_one_process_draws():
    from unlearn.data.sampling import OneProcessDraws, placed_shard

    order = [6, 2, 9, 0, 4, 7, 1, 8, 3, 5, 10]  # 11: rank 1's share ends in a padding repeat
    one = _Drawing(11)
    reads = {i: one[i][1] for i in order}
    for rank in (0, 1):
        ds = OneProcessDraws(_Drawing(11))
        shard = placed_shard(order, rank, 2)
        got = [ds[i] for i in shard]
        real = [g for g, i in zip(got, shard) if not isinstance(i, Repeat)]
        assert real and all(reads[i] == v for i, v in real), rank
        assert ds.ds.rng.getstate() == one.rng.getstate(), rank  # the next epoch starts where one process's does
    # without the replay a rank's draws are its own
    alone = _Drawing(11)
    assert [alone[i][1] for i in order[1::2]] != [reads[i] for i in order[1::2]]


def test_a_dataset_that_draws_without_skip_is_refused():
    import random

    import pytest

    from unlearn.data.sampling import OneProcessDraws

    class NoSkip:
        rng = random.Random(0)

    with pytest.raises(TypeError, match="skip"):
        OneProcessDraws(NoSkip())


def test_a_replay_in_a_dataloader_worker_is_refused():
    """A worker holds its own copy of the random state and reads some batches only: its replay would not be the
    one process's draws, so it is refused, naming the setting."""
    import pytest
    from torch.utils.data import DataLoader

    from unlearn.data.sampling import OneProcessDraws, placed_shard

    shard = placed_shard([3, 0, 2, 1], 1, 2)  # rank 1: its first index replays rank 0's draw for index 3
    loader = DataLoader(OneProcessDraws(_Drawing(4)), sampler=shard, batch_size=1, num_workers=1,
                        collate_fn=lambda b: b)
    with pytest.raises(ValueError, match="finetune.num_workers=0"):
        list(loader)
