"""unlearn.rank_sum: tensors summed over ranks in one collective come back in their shapes and order."""

import torch

from unlearn.rank_sum import sum_over_ranks


class TwoRanks:
    """A trainer's strategy whose other rank holds the same tensors: the SUM all-reduce doubles them."""

    def __init__(self, world_size=2):
        self.calls, self.world_size = 0, world_size

    @property
    def strategy(self):
        if self.world_size == 1:
            raise AssertionError("one process reads no strategy")
        return self

    def reduce(self, flat, reduce_op):
        assert reduce_op == "sum"
        self.calls += 1
        return flat * 2


def test_each_tensor_comes_back_summed_in_its_shape_after_one_collective():
    a, b, c = torch.arange(6.0).reshape(2, 3), torch.tensor([7.0]), torch.ones(2, 1, 2)
    strategy = TwoRanks()
    out = sum_over_ranks(strategy, [a, b, c])
    assert strategy.calls == 1
    assert [t.shape for t in out] == [a.shape, b.shape, c.shape]
    for got, want in zip(out, (a, b, c)):
        assert torch.equal(got, 2 * want)
    alone = TwoRanks(world_size=1)
    assert all(torch.equal(got, want) for got, want in zip(sum_over_ranks(alone, [a, b, c]), (a, b, c)))
    assert alone.calls == 0
