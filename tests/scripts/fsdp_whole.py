"""Two gloo processes wrap a small model in FSDP as Lightning's trainer=fsdp does (a unit per block, activation
checkpointing, bf16 mixed precision casting the buffers, FULL_SHARD), run a forward, then unlearn.strategies'
whole_modules: each rank must get back the model it started from. Used by tests/test_fsdp.py."""

import copy
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, h):
        return torch.tanh(self.lin(h))


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(10, 4)
        self.blocks = torch.nn.ModuleList([Block(), Block()])
        self.head = torch.nn.Linear(4, 10, bias=False)
        self.head.weight = self.emb.weight  # tied, as many language models' output layer
        self.frozen = torch.nn.Linear(4, 4)  # a frozen part, as KL's reference
        self.frozen.requires_grad_(False)
        self.register_buffer("scale", torch.full((4,), 1.5))

    def forward(self, x):
        h = self.emb(x) * self.scale
        for b in self.blocks:
            h = b(h)
        return self.head(h + self.frozen(h))


def rank_main(rank: int, port: int, out: str) -> None:
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import apply_activation_checkpointing
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp import MixedPrecision, ShardingStrategy
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    from unlearn.strategies import whole_modules

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)
    net = Net()
    start = copy.deepcopy(net)
    x = torch.tensor([[1, 2, 3], [4, 5, 6]])
    root = FSDP(net, auto_wrap_policy=ModuleWrapPolicy({Block}), device_id=torch.device("cpu"), use_orig_params=True,
                sharding_strategy=ShardingStrategy.FULL_SHARD,
                mixed_precision=MixedPrecision(param_dtype=torch.bfloat16, buffer_dtype=torch.bfloat16))
    apply_activation_checkpointing(root, check_fn=lambda m: isinstance(m, Block))
    with torch.no_grad():
        root(x)
    assert net.scale.dtype == torch.bfloat16  # what FSDP's mixed precision did to the buffer
    whole = whole_modules(root)
    assert whole is net
    assert not [n for n, m in whole.named_modules() if type(m).__name__ in ("FullyShardedDataParallel",
                                                                             "CheckpointWrapper")]
    ours, theirs = dict(whole.named_parameters()), dict(start.named_parameters())
    assert ours.keys() == theirs.keys(), (ours.keys(), theirs.keys())
    for name, p in theirs.items():
        assert torch.equal(ours[name], p) and ours[name].dtype == p.dtype, name
        assert ours[name].requires_grad == p.requires_grad, name
    assert whole.head.weight is whole.emb.weight
    assert whole.scale.dtype == torch.float32 and torch.equal(whole.scale, start.scale)
    assert not [n for n, m in whole.named_modules() if "_is_fsdp_managed_module" in m.__dict__]
    with torch.no_grad():
        assert torch.equal(whole(x), start(x))
    if rank == 0:
        Path(out).write_text("ok")
    # teardown: both ranks past their last collective before either destroys its group, then out without the
    # interpreter's exit, whose static destructors met a still-joinable thread in about 1 of 40 runs here
    # ("terminate called without an active exception", SIGABRT, after every check had passed)
    dist.barrier()
    dist.destroy_process_group()
    os._exit(0)


if __name__ == "__main__":
    mp.spawn(rank_main, args=(int(sys.argv[1]), sys.argv[2]), nprocs=2)
